import type { RecordedEvent } from "../../domain/events.js";
import type { Clock } from "../../ports/clock.js";
import type { NotificationState } from "../../ports/notification-state.js";
import type { RequestStore } from "../../ports/store.js";
import { type DeliveryChannel, type PromptRecorder, postJson } from "../channel.js";
import { buildReviewMessage, type MessageOptions } from "../message.js";
import { consoleLink } from "../slack/blocks.js";
import { teamsCard } from "./card.js";

export interface TeamsNotifierOptions {
  /** The channel's incoming webhook or Workflows URL. */
  readonly webhookUrl: string;
  /** Base of the console's approval pages. */
  readonly consoleUrl: string;
  readonly store: Pick<RequestStore, "get">;
  readonly state: NotificationState;
  readonly clock: Clock;
  readonly message: MessageOptions;
  /** Records `notification.sent` once the approval card is posted. */
  readonly recordPrompt?: PromptRecorder;
}

export const TEAMS_SCOPE = "teams";

/** The events that get a card: a request needing approval, and its outcome. */
function cardWorthy(event: RecordedEvent): boolean {
  return (
    (event.type === "request.decided" && event.data.effect === "approve") ||
    event.type === "request.approved" ||
    event.type === "request.denied" ||
    (event.type === "request.expired" && event.data.previous_status === "pending")
  );
}

/**
 * Posts an Adaptive Card to a Teams channel when a request needs approval and
 * when it is decided. Incoming webhooks cannot edit a posted card, so the
 * outcome is a second card. Sent cards are remembered per event, so a retried
 * event does not post twice.
 */
export function createTeamsNotifier(options: TeamsNotifierOptions): DeliveryChannel {
  const { store, state, clock } = options;
  return {
    name: TEAMS_SCOPE,
    wants: cardWorthy,
    async deliver(event) {
      const request = await store.get(event.requestId);
      if (request === undefined || request.decision.effect !== "approve") return;
      const facts = await state.facts(TEAMS_SCOPE, request.id);
      const key = `sent:${event.id}`;
      if (facts[key] === undefined) {
        const message = buildReviewMessage(request, [], clock.now(), options.message);
        const card = teamsCard(message, consoleLink(options.consoleUrl, request.id));
        await postJson(options.webhookUrl, JSON.stringify(card), {});
        await state.saveFacts(TEAMS_SCOPE, request.id, { [key]: "1" });
      }
      // Also when a retry finds the card already sent: the record may be what failed.
      if (event.type === "request.decided") {
        await options.recordPrompt?.(request.id, { target: "channel", destinations: 1 });
      }
    },
  };
}
