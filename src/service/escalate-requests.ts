import { escalateIfDue } from "../domain/escalation.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * Escalates every pending request whose escalation time has passed, recording
 * `request.escalated`; the notification workers then prompt the escalation
 * groups. Run periodically beside the expiry sweep. Each escalation is a
 * compare-and-swap on the request, so when several replicas sweep at once
 * exactly one records it, and a request decided meanwhile is not escalated.
 */
export async function escalateDue(deps: BrokerDeps, batch = 500): Promise<number> {
  let escalated = 0;
  for (;;) {
    const ids = await deps.store.escalationsDue(deps.clock.now(), batch);
    let changed = 0;
    for (const id of ids) {
      const { events } = await transact(deps, id, (current, now) => {
        // Not due, or no longer needed: nothing changes and nothing is recorded.
        return escalateIfDue(current, now) ?? { request: current, events: [] };
      });
      if (events.length > 0) changed++;
    }
    escalated += changed;
    // A full batch of which nothing changed would come back unchanged: stop
    // rather than read it again until the next sweep.
    if (ids.length < batch || changed === 0) return escalated;
  }
}
