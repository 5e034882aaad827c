import type { RecordedEvent } from "../domain/events.js";
import type { Principal } from "../domain/principal.js";
import { type AccessRequest, isLive, type RequestStatus } from "../domain/request.js";
import type { EventQuery, RequestPage, RequestQuery } from "../ports/store.js";
import { assertVisible, requireKind } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled } from "./record.js";

export interface WaitOptions {
  /** Long-poll up to this long (0: answer at once). */
  readonly waitSeconds?: number;
  /** Wait while the status is this one; by default, the status at the call. */
  readonly whileStatus?: RequestStatus;
  readonly signal?: AbortSignal;
}

/**
 * Reads one request. With `waitSeconds`, long-polls: returns as soon as the
 * status differs from `whileStatus` (or from the status at the call), or when
 * the wait ends.
 */
export async function getRequest(
  deps: BrokerDeps,
  principal: Principal,
  id: string,
  options: WaitOptions = {},
): Promise<AccessRequest> {
  const { waitSeconds = 0, signal } = options;
  // Checked before the lookup, so the answer does not reveal whether the id exists.
  requireKind(principal, "agent", "reviewer", "auditor");
  let request = await loadSettled(deps, id);
  assertVisible(request, principal);
  const initialStatus = options.whileStatus ?? request.status;
  const waitUntil = Date.now() + waitSeconds * 1000;
  // A final status never changes, so there is nothing to wait for.
  while (isLive(request.status) && request.status === initialStatus && !signal?.aborted) {
    const remaining = waitUntil - Date.now();
    if (remaining <= 0) break;
    // Wake at the stage's deadline too, so a waiter sees the expiry when it happens
    // (loadSettled records it). The deadline is on the injected clock.
    const untilDeadline = Math.max(0, request.expiresAt - deps.clock.now()) + 1;
    await deps.store.waitForChange(id, request.version, Math.min(remaining, untilDeadline), signal);
    request = await loadSettled(deps, id);
  }
  return request;
}

export async function listRequests(
  deps: BrokerDeps,
  principal: Principal,
  query: RequestQuery,
): Promise<RequestPage> {
  requireKind(principal, "reviewer", "auditor");
  return deps.store.list(query);
}

export async function listEvents(
  deps: BrokerDeps,
  principal: Principal,
  query: EventQuery,
): Promise<readonly RecordedEvent[]> {
  requireKind(principal, "auditor");
  return deps.store.events(query);
}
