import { isWritError } from "../domain/errors.js";
import type { BrokerDeps } from "./deps.js";
import { settle } from "./record.js";

/**
 * Expires every live request whose deadline has passed, recording
 * `request.expired` / `credential.expired`. Run periodically; reads settle lazily
 * too, so the sweep only makes the record timely, never decides correctness.
 * Resolves with the number of requests this call expired.
 *
 * An index entry that leads to no expiry (the request was decided or removed
 * by a writer that did not keep the index, or expired by another replica just
 * now) is put right in the store (`reindex`), so that the next read reaches
 * the requests behind it instead of reading it again.
 */
export async function expireDue(deps: BrokerDeps, batch = 500): Promise<number> {
  let expired = 0;
  const handled = new Set<string>();
  for (;;) {
    const ids = await deps.store.due(deps.clock.now(), batch);
    const fresh = ids.filter((id) => !handled.has(id));
    for (const id of fresh) {
      handled.add(id);
      if (await expireOne(deps, id)) expired++;
      else await deps.store.reindex(id);
    }
    // A batch of entries this sweep has handled already would come back
    // unchanged: stop rather than read it again until the next sweep.
    if (ids.length < batch || fresh.length === 0) return expired;
  }
}

/** Expires one request if its deadline has passed; whether this call recorded the expiry. */
async function expireOne(deps: BrokerDeps, id: string): Promise<boolean> {
  try {
    return (await settle(deps, id)).expired;
  } catch (error) {
    // An entry whose request no longer exists: nothing to expire.
    if (isWritError(error) && error.code === "not_found") return false;
    throw error;
  }
}
