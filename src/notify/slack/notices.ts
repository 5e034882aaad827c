import type { types as Slack } from "@slack/bolt";
import type { RecordedEvent } from "../../domain/events.js";
import type { AccessRequest } from "../../domain/request.js";
import { type AfterReviewEntry, clip, type ReviewMessage } from "../message.js";
import {
  consoleLink,
  escapeMrkdwn,
  mrkdwnCode,
  person,
  type SlackRenderOptions,
  slackDate,
} from "./blocks.js";

/**
 * Messages that tell rather than ask: the heads-up to a policy's `@notify`
 * groups once a request is decided, and the prompt to its `@review_after`
 * groups once a credential was issued. Neither carries a button: nothing here
 * approves, denies or records a review; the review is made in writ, which the
 * message links to.
 */

/** Which notice an event brings, if any, and to which groups. */
export function noticeOf(
  request: AccessRequest,
  event: RecordedEvent,
): { readonly kind: "decided" | "review_after"; readonly groups: readonly string[] } | undefined {
  const { notify, reviewAfter } = request.decision;
  if (
    notify !== undefined &&
    (event.type === "request.approved" || event.type === "request.denied")
  ) {
    return { kind: "decided", groups: notify };
  }
  if (reviewAfter !== undefined && event.type === "credential.issued") {
    return { kind: "review_after", groups: reviewAfter };
  }
  return undefined;
}

/** The common lines: who asked for what, why, and under which policy. */
function facts(message: ReviewMessage): string {
  const e = escapeMrkdwn;
  return [
    `*Agent* ${mrkdwnCode(message.agent)} (owner *${e(message.owner)}*)`,
    `*Action* ${mrkdwnCode(message.action)} on ${mrkdwnCode(message.resource)}`,
    `*Reason* ${message.reason !== undefined ? e(message.reason) : "_none given_"}`,
    ...(message.ticket !== undefined
      ? [
          `*Ticket* ${
            message.ticket.url !== undefined
              ? `<${message.ticket.url}|${e(message.ticket.id)}>`
              : e(message.ticket.id)
          }`,
        ]
      : []),
    `*Policy* ${e(message.policies.join(", ") || "none")}`,
  ].join("\n");
}

/**
 * The heads-up for `@notify` groups. `outcome` comes from the event, not from
 * the request as it stands when the message goes out (it may have moved on).
 */
export function decidedNotice(
  message: ReviewMessage,
  outcome: "approved" | "denied",
  byPolicy: boolean,
  options: SlackRenderOptions = {},
): { text: string; blocks: Slack.KnownBlock[] } {
  const headline =
    outcome === "approved"
      ? byPolicy
        ? "Heads-up: allowed at once by policy"
        : "Heads-up: approved"
      : "Heads-up: denied";
  return notice(message, headline, options);
}

/**
 * The prompt to `@review_after` groups once a credential was issued; once the
 * review is recorded, the same message updated in place to show its outcome,
 * so the group sees it was done and a concern stands out.
 */
export function afterReviewNotice(
  message: ReviewMessage,
  options: SlackRenderOptions = {},
): { text: string; blocks: Slack.KnownBlock[] } {
  const recorded = message.afterReview?.recorded;
  if (recorded === undefined) {
    return notice(message, "Credential issued: review it after the fact", options);
  }
  return recorded.verdict === "concern"
    ? notice(message, "Concern raised in the review after the fact", options, ":warning:")
    : notice(message, "Reviewed after the fact: no concern", options, ":white_check_mark:");
}

/** The recorded review after the fact: who, when, how, and the note. */
function afterReviewLines(
  recorded: AfterReviewEntry,
  options: SlackRenderOptions,
): readonly string[] {
  const verdict = recorded.verdict === "concern" ? "*concern*" : "*ok*, no concern";
  return [
    `*Reviewed after the fact* by ${person(recorded.reviewer, options)} ${slackDate(recorded.at)} (${escapeMrkdwn(recorded.channel)}): ${verdict}`,
    ...(recorded.note !== undefined ? [`*Note* ${escapeMrkdwn(recorded.note)}`] : []),
  ];
}

function notice(
  message: ReviewMessage,
  headline: string,
  options: SlackRenderOptions,
  icon?: string,
): { text: string; blocks: Slack.KnownBlock[] } {
  const lines = [facts(message)];
  const afterReview = message.afterReview;
  if (afterReview?.recorded !== undefined) {
    lines.push(...afterReviewLines(afterReview.recorded, options));
  } else if (afterReview !== undefined) {
    lines.push(`_${escapeMrkdwn(afterReview.text)}_`);
  }
  if (options.consoleUrl !== undefined) {
    lines.push(`<${consoleLink(options.consoleUrl, message.requestId)}|Open in writ>`);
  }
  return {
    text: escapeMrkdwn(clip(`${headline}: ${message.agent} ${message.action}`, 150)),
    blocks: [
      {
        type: "header",
        text: {
          type: "plain_text",
          text: clip(icon !== undefined ? `${icon} ${headline}` : headline, 150),
          emoji: true,
        },
      },
      { type: "section", text: { type: "mrkdwn", text: clip(lines.join("\n"), 3000) } },
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: `writ request \`${message.requestId}\`` }],
      },
    ],
  };
}
