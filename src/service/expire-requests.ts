import { isWritError } from "../domain/errors.js";
import type { BrokerDeps } from "./deps.js";
import { settle } from "./record.js";
import { sweepDue } from "./sweep-due.js";

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
 *
 * A request that cannot be handled (its record unreadable) is logged by id
 * and passed over, and the sweep goes on with the others; it then rejects
 * with that failure (see {@link sweepDue}).
 */
export async function expireDue(deps: BrokerDeps, batch = 500): Promise<number> {
  return sweepDue(
    deps,
    {
      name: "expiry",
      read: (limit) => deps.store.due(deps.clock.now(), limit),
      handle: (id) => expireOne(deps, id),
    },
    batch,
  );
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
