import { isWritError } from "../domain/errors.js";
import { escalateIfDue } from "../domain/escalation.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";
import { sweepDue } from "./sweep-due.js";

/**
 * Escalates every pending request whose escalation time has passed, recording
 * `request.escalated`; the notification workers then prompt the escalation
 * groups. Run periodically beside the expiry sweep. Each escalation is a
 * compare-and-swap on the request, so when several replicas sweep at once
 * exactly one records it, and a request decided meanwhile is not escalated.
 *
 * An index entry that leads to no escalation (the request was decided,
 * escalated or removed by a writer that did not keep the index, or by another
 * replica just now) is put right in the store (`reindex`), so that the next
 * read reaches the requests behind it instead of reading it again.
 *
 * A request that cannot be handled (its record unreadable) is logged by id
 * and passed over, and the sweep goes on with the others; it then rejects
 * with that failure (see {@link sweepDue}).
 */
export async function escalateDue(deps: BrokerDeps, batch = 500): Promise<number> {
  return sweepDue(
    deps,
    {
      name: "escalation",
      read: (limit) => deps.store.escalationsDue(deps.clock.now(), limit),
      handle: (id) => escalateOne(deps, id),
    },
    batch,
  );
}

/** Escalates one request if it is due; whether this call recorded the escalation. */
async function escalateOne(deps: BrokerDeps, id: string): Promise<boolean> {
  try {
    const { events } = await transact(deps, id, (current, now) => {
      // Not due, or no longer needed: nothing changes and nothing is recorded.
      return escalateIfDue(current, now) ?? { request: current, events: [] };
    });
    return events.length > 0;
  } catch (error) {
    // An entry whose request no longer exists: nothing to escalate.
    if (isWritError(error) && error.code === "not_found") return false;
    throw error;
  }
}
