import type { RecordedEvent } from "../../domain/events.js";
import type { AccessRequest } from "../../domain/request.js";
import type { Clock } from "../../ports/clock.js";
import type { NotificationState } from "../../ports/notification-state.js";
import type { RequestStore } from "../../ports/store.js";
import {
  type DeliveryChannel,
  DeliveryError,
  httpFailure,
  type PromptRecorder,
  postJson,
} from "../channel.js";
import { buildReviewMessage, type MessageOptions } from "../message.js";
import { consoleLink } from "../slack/blocks.js";
import { afterReviewHeadline, teamsCard } from "./card.js";

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

/**
 * The events that get a card: a request needing approval, its escalation
 * (the card asks again, saying how long it has waited), its outcome, the
 * issue of a credential that must be reviewed after the fact (`@review_after`),
 * and that review once recorded.
 * A cancelled request is an outcome too: without its card, the approval card
 * would ask reviewers to act on a request that no longer exists.
 */
function cardWorthy(event: RecordedEvent): boolean {
  return (
    (event.type === "request.decided" && event.data.effect === "approve") ||
    event.type === "request.escalated" ||
    event.type === "request.approved" ||
    event.type === "request.denied" ||
    event.type === "request.cancelled" ||
    event.type === "credential.issued" ||
    event.type === "request.reviewed_after" ||
    (event.type === "request.expired" && event.data.previous_status === "pending")
  );
}

/**
 * Whether this request's event gets a card: every card-worthy event of a
 * request that needs approval; the outcome of one the policy allowed at once
 * when it names groups to tell (`@notify`, a heads-up); and, for either, the
 * issue of a credential to be reviewed after the fact, and the review.
 */
function wantsCard(request: AccessRequest, event: RecordedEvent): boolean {
  if (event.type === "credential.issued" || event.type === "request.reviewed_after") {
    return request.decision.reviewAfter !== undefined;
  }
  if (request.decision.effect === "approve") return true;
  return (
    request.decision.notify !== undefined &&
    (event.type === "request.approved" || event.type === "request.denied")
  );
}

/**
 * Office 365 connectors (legacy incoming webhooks) answer 200 even when Teams
 * refused the card, throttling (429) or size (413) included, with the refusal
 * in the body: "Webhook message delivery failed with error: Microsoft Teams
 * endpoint returned HTTP error 429 with ContextId …". Such an answer is a
 * failure, classified by the status it names, or retried when it names none.
 */
const CONNECTOR_FAILURE = /^\s*Webhook message delivery failed/i;
const CONNECTOR_STATUS = /returned HTTP error (\d{3})\b/i;

function connectorFailure(body: string, nowMs: number): DeliveryError | undefined {
  if (!CONNECTOR_FAILURE.test(body)) return undefined;
  const status = Number(CONNECTOR_STATUS.exec(body)?.[1]);
  if (Number.isInteger(status) && status >= 400) {
    const failure = httpFailure(status, null, nowMs);
    return new DeliveryError(`Teams refused the card (HTTP ${status}, answered as 200)`, {
      retryable: failure.retryable,
    });
  }
  return new DeliveryError("Teams refused the card (answered as 200)", { retryable: true });
}

/**
 * Posts an Adaptive Card to a Teams channel when a request needs approval and
 * when it is decided. Incoming webhooks cannot edit a posted card, so the
 * outcome is a second card, and so is the outcome of a review after the
 * fact. Sent cards are remembered per event, so a retried event does not post
 * twice.
 */
export function createTeamsNotifier(options: TeamsNotifierOptions): DeliveryChannel {
  const { store, state, clock } = options;
  return {
    name: TEAMS_SCOPE,
    wants: cardWorthy,
    async deliver(event, signal) {
      const request = await store.get(event.requestId);
      if (request === undefined || !wantsCard(request, event)) return;
      // Decided, or past its approval deadline, before the escalation was
      // delivered: there is nobody left to ask, and the outcome gets its own card.
      if (
        event.type === "request.escalated" &&
        (request.status !== "pending" || clock.now() >= request.expiresAt)
      ) {
        return;
      }
      const facts = await state.facts(TEAMS_SCOPE, request.id);
      const key = `sent:${event.id}`;
      if (facts[key] === undefined) {
        const message = buildReviewMessage(request, [], clock.now(), options.message);
        const card = teamsCard(
          message,
          consoleLink(options.consoleUrl, request.id),
          event.type === "request.reviewed_after" ? afterReviewHeadline(message) : undefined,
        );
        const answer = await postJson(
          options.webhookUrl,
          JSON.stringify(card),
          {},
          { signal, responseBytes: 1024, clock },
        );
        const refused = connectorFailure(answer, clock.now());
        if (refused !== undefined) throw refused;
        await state.saveFacts(TEAMS_SCOPE, request.id, { [key]: "1" });
      }
      // Also when a retry finds the card already sent: the record may be what failed.
      if (event.type === "request.decided") {
        await options.recordPrompt?.(request.id, { target: "channel", destinations: 1 });
      }
    },
  };
}
