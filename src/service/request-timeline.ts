import type { RecordedEvent } from "../domain/events.js";
import type { Principal } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { assertVisible, requireKind } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled } from "./record.js";

/** Most events shown for one request; a resource server replaying a token could add many. */
export const MAX_TIMELINE_EVENTS = 500;

/**
 * One request and the events recorded for it, in order: its whole story, for the
 * people who review requests and audit them. Events carry nothing the request
 * itself does not already show them, plus who used or replayed its credential.
 */
export async function requestTimeline(
  deps: BrokerDeps,
  principal: Principal,
  id: string,
): Promise<{ request: AccessRequest; events: readonly RecordedEvent[]; truncated: boolean }> {
  requireKind(principal, "reviewer", "auditor");
  const request = await loadSettled(deps, id);
  assertVisible(request, principal);
  const events = await deps.store.events({ requestId: id, limit: MAX_TIMELINE_EVENTS + 1 });
  return {
    request,
    events: events.slice(0, MAX_TIMELINE_EVENTS),
    truncated: events.length > MAX_TIMELINE_EVENTS,
  };
}
