import { WritError } from "../domain/errors.js";
import { SYSTEM_ACTOR } from "../domain/principal.js";
import type { NotificationState } from "../ports/notification-state.js";
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
  /** Tells several webhooks apart: the webhook's configured name, or a hash of its URL; never the URL. */
  readonly webhook?: string;
}

/** Who may record: the shared state that arbitrates between replicas, and this replica's id. */
export interface RecordClaim {
  readonly state: Pick<NotificationState, "lease">;
  readonly holder: string;
}

/** How long a claim to record keeps other replicas waiting if its holder dies mid-way. */
const CLAIM_MS = 30_000;

/**
 * Records `notification.sent`: a notification channel has delivered a request's
 * approval prompt, so its timeline can show when reviewers were told. Once per
 * request, channel and target: a retried delivery records nothing new. It
 * carries kinds and counts, never message text, addresses or secrets, and
 * changes no state.
 *
 * Finding no record and appending one are two steps, so two replicas (one
 * whose worker lease lapsed mid-delivery, and the one that took it over) could
 * both append. Each takes a claim on the record first and checks again under
 * it; a replica that finds the claim taken fails with `conflict`, which its
 * worker retries, and then finds the record written.
 */
export async function recordNotificationSent(
  deps: BrokerDeps,
  delivery: PromptDelivery,
  claim: RecordClaim,
): Promise<void> {
  const recorded = async () =>
    (
      await deps.store.events({
        requestId: delivery.requestId,
        type: "notification.sent",
        limit: 100,
      })
    ).some(
      (e) =>
        e.data.channel === delivery.channel &&
        e.data.target === delivery.target &&
        e.data.webhook === delivery.webhook,
    );
  if (await recorded()) return;
  const name = [
    "record:notification.sent",
    delivery.requestId,
    delivery.channel,
    delivery.target,
    ...(delivery.webhook !== undefined ? [delivery.webhook] : []),
  ].join(":");
  if (!(await claim.state.lease(name, claim.holder, CLAIM_MS))) {
    throw new WritError("conflict", "Another replica is recording this notification.");
  }
  // Under the claim: another replica may have recorded it since the first look.
  if (await recorded()) return;
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
