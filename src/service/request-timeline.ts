import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { Principal } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { previousEventId } from "../domain/stream-id.js";
import { assertVisible, requireKind } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { REQUEST_EVENT_SCAN_BUDGET } from "./read-requests.js";
import { loadSettled } from "./record.js";

/** Most events shown on one page of a request's timeline. */
export const MAX_TIMELINE_EVENTS = 500;

/** One page of a request's story. */
export interface RequestTimeline {
  readonly request: AccessRequest;
  /** At most `MAX_TIMELINE_EVENTS` events, in stream order. */
  readonly events: readonly RecordedEvent[];
  /** The event the page continues after, when it is not the first page. */
  readonly after?: RecordedEvent;
  /** The id to continue after when later events exist: the last event shown. */
  readonly next?: string;
  /** The `credential.revoked` event of a revoked request, wherever its page is: who ended it. */
  readonly revocation?: RecordedEvent;
}

/**
 * One request and the events recorded for it, in order: its whole story, for the
 * people who review requests and audit them, a page at a time (a resource
 * server replaying a token adds an event each time). Events carry nothing the
 * request itself does not already show them, plus who used or replayed its
 * credential.
 *
 * `after` continues after an event of this request (a page's `next`); anything
 * else, an event of another request included, is refused (`validation_failed`),
 * so a page never claims to continue a story from a point it does not hold.
 */
export async function requestTimeline(
  deps: BrokerDeps,
  principal: Principal,
  id: string,
  after?: string,
): Promise<RequestTimeline> {
  requireKind(principal, "reviewer", "auditor");
  const request = await loadSettled(deps, id);
  assertVisible(request, principal);
  // The revoke that ended it, not a credential discarded at source before it
  // (a collect that lost a race records one of those too). A filtered read
  // costs every event it passes over, and a token refused in a loop after the
  // revoke adds one event a try, so the read is bounded. Only an approved or
  // issued request can be revoked, so what precedes the revoke is the short
  // story of its review and collection: the bound reaches it.
  const revocation =
    request.status === "revoked"
      ? (
          await deps.store.scanEvents({
            requestId: id,
            type: "credential.revoked",
            limit: 20,
            scanLimit: REQUEST_EVENT_SCAN_BUDGET,
          })
        ).items.find((event) => event.data.cause === "revoked")
      : undefined;
  const revoked = revocation !== undefined ? { revocation } : {};
  if (after === undefined) {
    const events = await deps.store.events({ requestId: id, limit: MAX_TIMELINE_EVENTS + 1 });
    return { ...page(request, events), ...revoked };
  }
  const notOurs = () =>
    new WritError("validation_failed", "after is not an event of this request.");
  const previous = previousEventId(after);
  if (previous === undefined) throw notOurs();
  // Read from the cursor itself: the first event shows that it is this request's.
  const [first, ...events] = await deps.store.events({
    requestId: id,
    after: previous,
    limit: MAX_TIMELINE_EVENTS + 2,
  });
  if (first?.id !== after) throw notOurs();
  return { ...page(request, events), after: first, ...revoked };
}

function page(request: AccessRequest, events: readonly RecordedEvent[]): RequestTimeline {
  const shown = events.slice(0, MAX_TIMELINE_EVENTS);
  const last = shown.at(-1);
  return {
    request,
    events: shown,
    ...(events.length > MAX_TIMELINE_EVENTS && last !== undefined ? { next: last.id } : {}),
  };
}
