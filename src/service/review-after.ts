import { reviewAfter } from "../domain/after-review.js";
import type { Reviewer } from "../domain/principal.js";
import type { ReviewChannel } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * A member of the request's `@review_after` groups records the review after
 * the fact. A compare-and-swap like every change: of two reviewers racing,
 * the first recorded wins and the other gets `already_reviewed_after`.
 */
export async function recordReviewAfter(
  deps: BrokerDeps,
  reviewer: Reviewer,
  id: string,
  verdict: "ok" | "concern",
  note: string | undefined,
  channel: ReviewChannel,
) {
  return transact(deps, id, (request, now) =>
    reviewAfter({
      request,
      reviewer,
      verdict,
      ...(note !== undefined ? { note } : {}),
      channel,
      now,
    }),
  );
}
