import type { BrokerDeps } from "./deps.js";
import { loadSettled } from "./record.js";

/**
 * Expires every live request whose deadline has passed, recording
 * `request.expired` / `credential.expired`. Run periodically; reads settle lazily
 * too, so the sweep only makes the record timely, never decides correctness.
 */
export async function expireDue(deps: BrokerDeps, batch = 500): Promise<number> {
  let expired = 0;
  for (;;) {
    const ids = await deps.store.due(deps.clock.now(), batch);
    for (const id of ids) {
      await loadSettled(deps, id);
      expired++;
    }
    if (ids.length < batch) return expired;
  }
}
