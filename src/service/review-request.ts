import type { Reviewer } from "../domain/principal.js";
import type { ReviewChannel } from "../domain/request.js";
import { approveRequest, denyRequest } from "../domain/review.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/** A reviewer approves. Quorum, group and self-approval rules live in the domain. */
export async function approve(
  deps: BrokerDeps,
  reviewer: Reviewer,
  id: string,
  comment: string | undefined,
  channel: ReviewChannel,
  channelUserId?: string,
) {
  return transact(deps, id, (request, now) =>
    approveRequest({
      request,
      reviewer,
      ...(comment !== undefined ? { comment } : {}),
      channel,
      ...(channelUserId !== undefined ? { channelUserId } : {}),
      now,
      timing: deps.timing,
    }),
  );
}

/** A reviewer denies; one deny ends the request. */
export async function deny(
  deps: BrokerDeps,
  reviewer: Reviewer,
  id: string,
  reason: string,
  channel: ReviewChannel,
  channelUserId?: string,
) {
  return transact(deps, id, (request, now) =>
    denyRequest({
      request,
      reviewer,
      reason,
      channel,
      ...(channelUserId !== undefined ? { channelUserId } : {}),
      now,
    }),
  );
}
