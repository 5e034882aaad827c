import type { ErrorCode } from "../domain/errors.js";
import type { Actor } from "../domain/principal.js";
import type { ReviewChannel } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";
import { appendEvents, loadSettled } from "./record.js";

/** A click or command in a review channel that writ refused. */
export interface Refusal {
  readonly requestId: string;
  /** Who clicked: the reviewer when the account maps to one, else writ's channel integration. */
  readonly actor: Actor;
  readonly channel: ReviewChannel;
  /** The account in the channel (a Slack user id). */
  readonly channelUserId: string;
  readonly attempted: "approve" | "deny" | "reveal";
  /** Why: a writ error code, or `unknown_channel_user` for an account that maps to no reviewer. */
  readonly code: ErrorCode | "unknown_channel_user";
}

/**
 * Records a refused review attempt as `approval.refused`. It changes no state:
 * the record is there so that every click, refused ones included, can be
 * audited. Nothing is recorded for a request that does not exist.
 */
export async function recordRefusal(deps: BrokerDeps, refusal: Refusal): Promise<void> {
  const request = await loadSettled(deps, refusal.requestId);
  await appendEvents(deps, request, [
    {
      type: "approval.refused",
      requestId: request.id,
      actor: refusal.actor,
      time: deps.clock.now(),
      data: {
        channel: refusal.channel,
        channel_user_id: refusal.channelUserId,
        attempted: refusal.attempted,
        code: refusal.code,
        ...(refusal.actor.kind === "reviewer" ? { reviewer: refusal.actor.id } : {}),
      },
    },
  ]);
}
