import { clip, type ReviewMessage } from "../message.js";

/**
 * Escapes text for the Markdown subset Adaptive Cards render: agent text must
 * not become a link (`[Approve](https://…)`), emphasis, or a list item of its
 * own (`- `, `+ `, `1. ` at the start). Line breaks never reach here: the
 * review message shows them as visible escapes.
 */
export function escapeCardMarkdown(text: string): string {
  return text
    .replace(/[\\`*_[\]()~]/g, (ch) => `\\${ch}`)
    .replace(/^(\s*)([-+]|\d+\.)(?=\s|$)/, (_, space: string, marker: string) =>
      marker.endsWith(".") ? `${space}${marker.slice(0, -1)}\\.` : `${space}\\${marker}`,
    );
}

/** An Adaptive Card `TextBlock`. */
interface TextBlock {
  readonly type: "TextBlock";
  readonly text: string;
  readonly wrap: true;
  readonly weight?: "Bolder";
  readonly size?: "Medium" | "Large";
  readonly isSubtle?: true;
  readonly color?: "Attention" | "Good";
}

function text(value: string, extra: Partial<TextBlock> = {}): TextBlock {
  return { type: "TextBlock", text: value, wrap: true, ...extra };
}

/** A headline in place of the request's status, for a card about one event. */
export interface CardHeadline {
  readonly text: string;
  readonly color?: "Attention" | "Good";
}

/**
 * The headline of the card that follows a review after the fact: an incoming
 * webhook cannot edit the card that asked for the review, so the outcome is a
 * card of its own, and a concern is headed, and coloured, as one.
 */
export function afterReviewHeadline(message: ReviewMessage): CardHeadline | undefined {
  const recorded = message.afterReview?.recorded;
  if (recorded === undefined) return undefined;
  return recorded.verdict === "concern"
    ? { text: "Concern raised in the review after the fact", color: "Attention" }
    : { text: "Reviewed after the fact: no concern", color: "Good" };
}

/**
 * The Teams message for a request: an Adaptive Card with the same context as
 * the Slack message and a link to the console's approval page, where approval
 * happens (the console authenticates the reviewer; a card button could not).
 */
export function teamsCard(
  message: ReviewMessage,
  approvalUrl: string,
  headline?: CardHeadline,
): object {
  const e = escapeCardMarkdown;
  const recorded = message.afterReview?.recorded;
  const facts = [
    { title: "Agent", value: `${e(message.agent)} (owner ${e(message.owner)})` },
    ...(message.onBehalfOf !== undefined
      ? [{ title: "On behalf of", value: e(message.onBehalfOf) }]
      : []),
    { title: "Action", value: e(message.action) },
    { title: "Resource", value: e(message.resource) },
    {
      title: "Credential",
      value: `${e(message.credentialType)}${message.audience !== undefined ? ` for ${e(message.audience)}` : ""}, ${message.ttlSeconds} s`,
    },
    { title: "Reason", value: message.reason !== undefined ? e(message.reason) : "none given" },
    ...(message.ticket !== undefined ? [{ title: "Ticket", value: e(message.ticket.id) }] : []),
    { title: "Policy", value: e(message.policies.join(", ") || "none") },
    {
      title: "Approvals",
      value: message.requirements
        .map((r) => `${r.approvals}/${r.quorum} from ${e(r.groups.join(" or "))}`)
        .join(", "),
    },
    ...(message.deadline !== undefined
      ? [{ title: message.deadline.label, value: new Date(message.deadline.at).toISOString() }]
      : []),
    ...(message.escalation !== undefined
      ? [{ title: "Escalated", value: e(message.escalation.text) }]
      : []),
    ...(recorded !== undefined
      ? [
          {
            title: "Reviewed after the fact",
            value: `${recorded.verdict === "concern" ? "**concern**" : "ok, no concern"}, by ${e(recorded.reviewer)} at ${new Date(recorded.at).toISOString()} (${e(recorded.channel)})`,
          },
          ...(recorded.note !== undefined ? [{ title: "Note", value: e(recorded.note) }] : []),
        ]
      : message.afterReview !== undefined
        ? [{ title: "After the fact", value: e(message.afterReview.text) }]
        : []),
  ];
  const context = message.context.map((entry) => ({
    title: e(entry.name),
    value: entry.masked ? "••• (masked; reveal in the console)" : e(entry.value ?? ""),
  }));
  const reviews = [
    ...message.approvals.map(
      (a) => `Approved by ${e(a.reviewer)} at ${new Date(a.at).toISOString()} (${a.channel})`,
    ),
    ...(message.denial !== undefined
      ? [`Denied by ${e(message.denial.reviewer)}: ${e(message.denial.reason)}`]
      : []),
    ...message.timeline.map((t) => `${new Date(t.at).toISOString()} ${e(t.text)}`),
  ];
  const actions = [
    {
      type: "Action.OpenUrl",
      title: message.open ? "Review in writ" : "Open in writ",
      url: approvalUrl,
    },
    ...(message.ticket?.url !== undefined
      ? [{ type: "Action.OpenUrl", title: "Open ticket", url: message.ticket.url }]
      : []),
  ];
  return {
    type: "message",
    summary: clip(
      headline !== undefined
        ? `${headline.text}: ${message.agent} ${message.action}`
        : message.summary,
      150,
    ),
    attachments: [
      {
        contentType: "application/vnd.microsoft.card.adaptive",
        contentUrl: null,
        content: {
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          type: "AdaptiveCard",
          version: "1.4",
          body: [
            text(e(`${headline?.text ?? message.headline}: ${message.action}`), {
              weight: "Bolder",
              size: "Medium",
              ...(headline?.color !== undefined ? { color: headline.color } : {}),
            }),
            { type: "FactSet", facts },
            ...(context.length > 0
              ? [text("Context", { weight: "Bolder" }), { type: "FactSet", facts: context }]
              : []),
            // Said, not dropped: an agent could otherwise put what matters past the limit.
            ...(message.contextOmitted > 0
              ? [
                  text(
                    `…and ${message.contextOmitted} more field${message.contextOmitted === 1 ? "" : "s"}, shown in writ`,
                    { isSubtle: true },
                  ),
                ]
              : []),
            ...(reviews.length > 0 ? [text(reviews.join("\n\n"))] : []),
            text(`writ request ${message.requestId}`, { isSubtle: true }),
          ],
          actions,
        },
      },
    ],
  };
}
