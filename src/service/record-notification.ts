import { SYSTEM_ACTOR } from "../domain/principal.js";
import type { BrokerDeps } from "./deps.js";
import { appendEvents, loadSettled } from "./record.js";

/** Where a request's approval prompt went, as the timeline shows it: kinds and counts only. */
export interface PromptDelivery {
  readonly requestId: string;
  /** The kind of notification channel. */
  readonly channel: "slack" | "teams" | "webhook";
  /** A chat channel, direct messages to approvers, or a webhook endpoint. */
  readonly target: "channel" | "dm" | "endpoint";
  /** How many channels, people or endpoints of that kind it reached. */
  readonly destinations: number;
  /** Tells several webhooks apart: the hash that names the webhook's worker, never its URL. */
  readonly webhook?: string;
}

/**
 * Records `notification.sent`: a notification channel has delivered a request's
 * approval prompt, so its timeline can show when reviewers were told. Once per
 * request, channel and target: a retried delivery records nothing new. It
 * carries kinds and counts, never message text, addresses or secrets, and
 * changes no state.
 */
export async function recordNotificationSent(
  deps: BrokerDeps,
  delivery: PromptDelivery,
): Promise<void> {
  const recorded = await deps.store.events({
    requestId: delivery.requestId,
    type: "notification.sent",
    limit: 100,
  });
  const same = recorded.some(
    (e) =>
      e.data.channel === delivery.channel &&
      e.data.target === delivery.target &&
      e.data.webhook === delivery.webhook,
  );
  if (same) return;
  const request = await loadSettled(deps, delivery.requestId);
  await appendEvents(deps, request, [
    {
      type: "notification.sent",
      requestId: request.id,
      actor: SYSTEM_ACTOR,
      time: deps.clock.now(),
      data: {
        channel: delivery.channel,
        target: delivery.target,
        destinations: delivery.destinations,
        ...(delivery.webhook !== undefined ? { webhook: delivery.webhook } : {}),
      },
    },
  ]);
}
