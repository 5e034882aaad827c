import { type DomainEvent, NO_REQUEST, type RecordedEvent } from "../domain/events.js";
import { SYSTEM_ACTOR } from "../domain/principal.js";
import type { StreamGap } from "../ports/store.js";
import type { BrokerDeps } from "./deps.js";

/**
 * Records that an audit log resumes after events the stream no longer holds: the
 * log was away while the stream was trimmed past its last event. The log's hash
 * chain cannot show what it never received, so the record says it: an
 * `audit.gap` event naming the log (`follower`), the last event it holds
 * (`after`) and the oldest one the stream still held (`first_available`). It
 * belongs to no request, and every log following the stream writes it, so each
 * says which range that one log lacks; another replica's log holds the range.
 *
 * It only appends to the stream: the log it concerns is still starting and
 * writes it with the rest of the stream.
 */
export async function recordAuditGap(
  deps: Pick<BrokerDeps, "store" | "clock">,
  gap: StreamGap,
): Promise<RecordedEvent> {
  const event: DomainEvent = {
    type: "audit.gap",
    requestId: NO_REQUEST,
    actor: SYSTEM_ACTOR,
    time: deps.clock.now(),
    data: { follower: gap.follower, after: gap.after, first_available: gap.firstAvailable },
  };
  const [recorded] = await deps.store.append([event]);
  if (recorded === undefined) throw new Error("the store recorded no event");
  return recorded;
}
