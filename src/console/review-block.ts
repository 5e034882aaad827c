import type { RecordedEvent } from "../domain/events.js";
import type { Principal, Reviewer } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { isOwnRequest, samePerson } from "../domain/review.js";

const when = (ms: number) => `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;

/** Which review forms a page offers a reviewer, and why not the others. */
export interface ReviewOptions {
  readonly approve: boolean;
  readonly deny: boolean;
  /** Why a form is not offered, in words; absent when both are. */
  readonly note?: string;
}

const NEITHER = (note: string): ReviewOptions => ({ approve: false, deny: false, note });

/**
 * What `reviewer` may do to `request` now. Only decides which forms a page
 * shows: the broker enforces the same rules (and more, such as the deadline) on
 * every approve and deny, whatever a page showed. A reviewer who approved may
 * still deny while the request is pending.
 */
export function reviewOptions(request: AccessRequest, reviewer: Reviewer): ReviewOptions {
  if (request.status !== "pending") return NEITHER(`The request is ${request.status}.`);
  if (isOwnRequest(request, reviewer)) {
    return NEITHER("You own this agent or it acts for you, so you cannot review its request.");
  }
  const named = new Set(request.decision.requirements.flatMap((r) => r.groups));
  if (!reviewer.groups.some((g) => named.has(g))) {
    return NEITHER(`Only members of ${[...named].join(", ") || "no group"} review this request.`);
  }
  if (request.reviews.some((r) => samePerson(r.reviewerId, reviewer.id))) {
    return {
      approve: false,
      deny: true,
      note: "You approved this request. Until it is decided you can still deny it.",
    };
  }
  return { approve: true, deny: true };
}

/**
 * Whether a request's page offers the Revoke form: an approved request not yet
 * collected, or an issued credential not yet used. Any reviewer or auditor may
 * revoke, owners included: ending access is never self-serving. The broker
 * decides again on every post, whatever a page showed.
 */
export function revocable(request: AccessRequest): boolean {
  return request.status === "approved" || request.status === "issued";
}

/**
 * What the signed-in person did to `request`, as recorded: their review, and
 * the revocation if it was theirs. Never taken from the address of a page: a
 * link anyone can send must not make a request look reviewed or revoked.
 */
export function ownOutcomes(
  request: AccessRequest,
  principal: Principal,
  revocation: RecordedEvent | undefined,
): string[] {
  const out: string[] = [];
  if (principal.kind === "reviewer") {
    for (const review of request.reviews) {
      if (!samePerson(review.reviewerId, principal.id)) continue;
      const verb = review.verdict === "approve" ? "approved" : "denied";
      out.push(`You ${verb} this request at ${when(review.at)}.`);
    }
  }
  if (
    revocation !== undefined &&
    revocation.actor.kind === principal.kind &&
    revocation.actor.id === principal.id
  ) {
    out.push(`You revoked this request at ${when(revocation.time)}.`);
  }
  return out;
}
