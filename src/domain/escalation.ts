import { SYSTEM_ACTOR } from "./principal.js";
import { type AccessRequest, advance, requestEvent, type Transition } from "./request.js";

/**
 * When the request is to be escalated, while that can still happen: it is
 * pending, its decision escalates, and it has not been escalated yet. The
 * stores index requests by this time, so the sweep finds those due without
 * reading every pending request.
 */
export function escalationDueAt(request: AccessRequest): number | undefined {
  const { escalation } = request.decision;
  if (request.status !== "pending" || escalation === undefined) return undefined;
  if (request.escalatedAt !== undefined) return undefined;
  return request.createdAt + escalation.afterSeconds * 1000;
}

/**
 * The escalation of a request still pending at its escalation time, recording
 * `request.escalated`; undefined when it is not due, already escalated, no
 * longer pending, or past its approval deadline (it expires instead). It
 * changes who is told, never who may approve: the request's requirements stay
 * as they were.
 */
export function escalateIfDue(request: AccessRequest, now: number): Transition | undefined {
  const dueAt = escalationDueAt(request);
  const escalation = request.decision.escalation;
  if (dueAt === undefined || escalation === undefined) return undefined;
  if (now < dueAt || now >= request.expiresAt) return undefined;
  return {
    request: advance(request, { escalatedAt: now }, now),
    events: [
      requestEvent(request, "request.escalated", SYSTEM_ACTOR, now, {
        groups: [...escalation.groups],
        after_seconds: escalation.afterSeconds,
        waited_seconds: Math.floor((now - request.createdAt) / 1000),
        approvals: request.reviews.filter((r) => r.verdict === "approve").length,
      }),
    ],
  };
}
