import type { Reviewer } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { isOwnRequest, samePerson } from "../domain/review.js";

/**
 * Why `reviewer` cannot review `request`, in words, or undefined if they can. Only
 * decides which forms a page shows: the broker enforces the same rules (and more,
 * such as the deadline) on every approve and deny, whatever a page showed.
 */
export function reviewBlock(request: AccessRequest, reviewer: Reviewer): string | undefined {
  if (request.status !== "pending") return `The request is ${request.status}.`;
  if (isOwnRequest(request, reviewer)) {
    return "You own this agent or it acts for you, so you cannot review its request.";
  }
  const named = new Set(request.decision.requirements.flatMap((r) => r.groups));
  if (!reviewer.groups.some((g) => named.has(g))) {
    return `Only members of ${[...named].join(", ") || "no group"} review this request.`;
  }
  if (request.reviews.some((r) => samePerson(r.reviewerId, reviewer.id))) {
    return "You have already reviewed this request.";
  }
  return undefined;
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
