import { WritError } from "./errors.js";
import { type Actor, actorOf, type Reviewer } from "./principal.js";
import {
  type AccessRequest,
  type AfterReview,
  advance,
  type ReviewChannel,
  requestEvent,
  type Transition,
} from "./request.js";
import { isOwnRequest, samePerson } from "./review.js";
import { hasVisibleText, PRINTABLE } from "./text.js";

/** The longest note a review after the fact may carry, as a deny reason. */
export const MAX_AFTER_REVIEW_NOTE = 2000;

/**
 * Whether the request still waits for its review after the fact: its policy
 * asked for one (`@review_after`), a credential was issued for it, and nobody
 * has recorded the review yet. Every status after issuance qualifies (used,
 * completed, expired, revoked): the point is to look back at what was done.
 * The stores index requests by this, so the list of those waiting costs its
 * page, not a scan.
 */
export function awaitsReviewAfter(request: AccessRequest): boolean {
  return (
    request.decision.reviewAfter !== undefined &&
    request.decision.reviewAfter.length > 0 &&
    request.credential !== undefined &&
    request.reviewedAfter === undefined
  );
}

/**
 * The reviewer's groups that the request's `@review_after` names, if
 * `reviewer` may review it after the fact now; throws the coded reason
 * otherwise. Rule 2 holds here as for approvals: the agent, its owner and the
 * person it acts for never review their own request, not even afterwards; nor
 * does anyone who approved it.
 */
export function assertEligibleAfterReviewer(request: AccessRequest, reviewer: Reviewer): string[] {
  const named = request.decision.reviewAfter ?? [];
  if (named.length === 0) {
    throw new WritError(
      "not_reviewable_after",
      "The policy that allowed this request asks for no review after the fact.",
      { status: request.status },
    );
  }
  if (request.credential === undefined) {
    throw new WritError(
      "not_reviewable_after",
      "No credential was issued for this request, so there is nothing to review after the fact yet.",
      { status: request.status },
    );
  }
  if (isOwnRequest(request, reviewer)) {
    throw new WritError(
      "self_approval_forbidden",
      "You own this agent or it acts on your behalf, so you cannot review its request.",
    );
  }
  const groups = reviewer.groups.filter((g) => named.includes(g));
  if (groups.length === 0) {
    throw new WritError(
      "not_an_approver",
      "You are not in a group that may review this request after the fact.",
      { groups: [...named] },
    );
  }
  // A look back by someone who approved it would review their own decision.
  if (
    request.reviews.some((r) => r.verdict === "approve" && samePerson(r.reviewerId, reviewer.id))
  ) {
    throw new WritError(
      "already_reviewed",
      "You approved this request; someone who did not must review it after the fact.",
    );
  }
  return groups;
}

/**
 * Records the review after the fact (`request.reviewed_after`), once: the
 * first one recorded closes it, and a later one is `already_reviewed_after`.
 * A `concern` needs a note saying what is wrong; it changes no credential.
 */
export function reviewAfter(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  verdict: "ok" | "concern";
  note?: string;
  channel: ReviewChannel;
  now: number;
}): Transition {
  const { request, reviewer, verdict, note, channel, now } = args;
  if (verdict !== "ok" && verdict !== "concern") {
    throw new TypeError('verdict must be "ok" or "concern"');
  }
  const groups = assertEligibleAfterReviewer(request, reviewer);
  const done = request.reviewedAfter;
  if (done !== undefined) {
    throw new WritError(
      "already_reviewed_after",
      `This request was already reviewed after the fact by ${done.reviewerId}.`,
      { reviewer: done.reviewerId, verdict: done.verdict },
    );
  }
  // Every channel checks the note alike: a concern nobody can read tells a security team nothing.
  if (
    note !== undefined &&
    (!hasVisibleText(note) || note.length > MAX_AFTER_REVIEW_NOTE || !PRINTABLE.test(note))
  ) {
    throw new WritError(
      "validation_failed",
      `The note must say something in printable text, at most ${MAX_AFTER_REVIEW_NOTE} characters.`,
    );
  }
  if (verdict === "concern" && note === undefined) {
    throw new WritError("validation_failed", "Say what the concern is in a note.");
  }
  const review: AfterReview = {
    reviewerId: reviewer.id,
    verdict,
    groups,
    ...(note !== undefined ? { note } : {}),
    at: now,
    channel,
  };
  const actor: Actor = actorOf(reviewer);
  return {
    request: advance(request, { reviewedAfter: review }, now),
    events: [
      requestEvent(request, "request.reviewed_after", actor, now, {
        reviewer: reviewer.id,
        groups,
        verdict,
        ...(note !== undefined ? { note } : {}),
        channel,
        status: request.status,
        credential_id: request.credential?.id ?? null,
      }),
    ],
  };
}
