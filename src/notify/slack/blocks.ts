import type { types as Slack } from "@slack/bolt";
import type { JsonValue } from "../../domain/json.js";
import { clip, contextValueText, escapeControls, type ReviewMessage } from "../message.js";

/** The `action_id`s of writ's buttons and the `callback_id` of its deny modal. */
export const SLACK_IDS = {
  approve: "writ_approve",
  deny: "writ_deny",
  reveal: "writ_reveal",
  denyModal: "writ_deny_reason",
  reasonBlock: "reason",
  reasonInput: "reason",
} as const;

export interface SlackRenderOptions {
  /** Base URL of writ's console, for an "Open in writ" link. */
  readonly consoleUrl?: string;
  /** A reviewer's Slack user id, to mention them next to their writ id. */
  readonly slackUserOf?: (personId: string) => string | undefined;
}

/**
 * Escapes text for Slack mrkdwn. Agents write reasons, resources and context:
 * unescaped, `<!channel>` would ping a whole channel and `<https://x|Approve>`
 * would be a disguised link.
 */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * Agent text as an inline code span, where Slack applies no mrkdwn: `*bold*`,
 * `_italic_`, `:emoji:` and links show as typed, so a context value cannot
 * dress itself up as writ's own lines. Slack has no escape for a backtick
 * inside a code span, so one is shown as ˋ (U+02CB) instead of ending the span.
 */
export function mrkdwnCode(text: string): string {
  if (text.length === 0) return "_(empty)_";
  return `\`${escapeMrkdwn(text.replaceAll("`", "\u02CB"))}\``;
}

/** A time Slack shows in each reader's own time zone, with an ISO fallback. */
export function slackDate(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return `<!date^${seconds}^{date_short_pretty} {time}|${new Date(ms).toISOString()}>`;
}

/** A person by writ id, with their Slack mention when writ knows their account. */
export function person(id: string, options: SlackRenderOptions): string {
  const slackId = options.slackUserOf?.(id);
  return slackId === undefined ? `*${escapeMrkdwn(id)}*` : `*${escapeMrkdwn(id)}* (<@${slackId}>)`;
}

function field(label: string, value: string): Slack.MrkdwnElement {
  // Escaping can grow text up to five times; Slack refuses fields over 2,000 characters.
  return { type: "mrkdwn", text: clip(`*${label}*\n${value}`, 2000) };
}

/**
 * `heading` and as many whole `lines` as fit in `max` UTF-16 units, then a line
 * counting those left out (with `omitted` more that never made it here). Cut
 * inside a line, an agent's value would lose the end of its code span, and
 * Slack would format the rest of it as writ's own text: bold, emoji, links.
 */
function fitLines(heading: string, lines: readonly string[], max: number, omitted = 0): string {
  for (let kept = lines.length; kept >= 0; kept--) {
    const left = lines.length - kept + omitted;
    const text = [
      heading,
      ...lines.slice(0, kept),
      ...(left > 0 ? [`_…and ${left} more_`] : []),
    ].join("\n");
    if (text.length <= max) return text;
  }
  return clip(heading, max);
}

const ICONS: Record<ReviewMessage["status"], string> = {
  pending: ":lock:",
  approved: ":white_check_mark:",
  issued: ":white_check_mark:",
  used: ":white_check_mark:",
  completed: ":white_check_mark:",
  expired: ":hourglass:",
  revoked: ":no_entry:",
  denied: ":no_entry:",
  cancelled: ":heavy_multiplication_x:",
};

/** The approval message: posted once, then updated in place as the request moves. */
export function approvalMessage(
  message: ReviewMessage,
  options: SlackRenderOptions = {},
): { text: string; blocks: Slack.KnownBlock[] } {
  const e = escapeMrkdwn;
  const who: Slack.MrkdwnElement[] = [
    field("Agent", `${mrkdwnCode(message.agent)} (owner ${person(message.owner, options)})`),
    ...(message.onBehalfOf !== undefined
      ? [field("On behalf of", person(message.onBehalfOf, options))]
      : []),
    // What the credential will allow is shown exactly as it will be minted: in
    // code spans, where Slack applies no formatting (a resource such as
    // `db://prod/*_raw_*` would otherwise lose characters to italics).
    field("Action", mrkdwnCode(message.action)),
    field("Resource", mrkdwnCode(message.resource)),
    field(
      "Credential",
      `${e(message.credentialType)}${message.audience !== undefined ? ` for ${mrkdwnCode(message.audience)}` : ""}, ${message.ttlSeconds} s`,
    ),
    field("Policy", e(message.policies.join(", ") || "none")),
    ...(message.deadline !== undefined
      ? [field(message.deadline.label, slackDate(message.deadline.at))]
      : []),
  ];
  const why: Slack.MrkdwnElement[] = [
    field("Reason", message.reason !== undefined ? e(message.reason) : "_none given_"),
    ...(message.ticket !== undefined
      ? [
          field(
            "Ticket",
            message.ticket.url !== undefined
              ? `<${message.ticket.url}|${e(message.ticket.id)}>`
              : e(message.ticket.id),
          ),
        ]
      : []),
  ];
  const blocks: Slack.KnownBlock[] = [
    {
      type: "header",
      text: {
        type: "plain_text",
        text: clip(`${ICONS[message.status]} ${message.headline}: ${message.action}`, 150),
        emoji: true,
      },
    },
    { type: "section", fields: who },
    { type: "section", fields: why },
  ];
  if (message.context.length > 0) {
    const lines = message.context.map((entry) =>
      entry.masked
        ? `• ${mrkdwnCode(entry.name)}: ••• _(masked)_`
        : `• ${mrkdwnCode(entry.name)}: ${mrkdwnCode(entry.value ?? "")}`,
    );
    blocks.push({
      type: "section",
      text: { type: "mrkdwn", text: fitLines("*Context*", lines, 3000, message.contextOmitted) },
    });
  }
  const progress = message.requirements
    .map((r) => `${r.approvals}/${r.quorum} from ${e(r.groups.join(" or "))}`)
    .join(", ");
  const reviews = [
    ...message.approvals.map(
      (a) =>
        `:white_check_mark: ${person(a.reviewer, options)} approved ${slackDate(a.at)} (${a.channel})`,
    ),
    ...(message.denial !== undefined
      ? [
          `:no_entry: ${person(message.denial.reviewer, options)} denied ${slackDate(message.denial.at)} (${message.denial.channel}): ${e(message.denial.reason)}`,
        ]
      : []),
  ];
  blocks.push({
    type: "section",
    text: {
      type: "mrkdwn",
      text: clip(
        `*Approvals* ${progress}${reviews.length > 0 ? `\n${reviews.join("\n")}` : ""}`,
        3000,
      ),
    },
  });
  // A new prompt to the escalation groups has no timeline yet: say why it came.
  if (
    message.escalation !== undefined &&
    !message.timeline.some((t) => t.type === "request.escalated")
  ) {
    blocks.push({
      type: "section",
      text: {
        type: "mrkdwn",
        text: clip(
          `:rotating_light: ${e(message.escalation.text)} (${slackDate(message.escalation.at)})`,
          3000,
        ),
      },
    });
  }
  if (message.timeline.length > 0) {
    blocks.push({
      type: "section",
      text: {
        type: "mrkdwn",
        text: clip(message.timeline.map((t) => `${slackDate(t.at)} ${e(t.text)}`).join("\n"), 3000),
      },
    });
  }
  const buttons: Slack.Button[] = [];
  if (message.open) {
    buttons.push(
      {
        type: "button",
        action_id: SLACK_IDS.approve,
        text: { type: "plain_text", text: "Approve" },
        style: "primary",
        value: message.requestId,
      },
      {
        type: "button",
        action_id: SLACK_IDS.deny,
        text: { type: "plain_text", text: "Deny" },
        style: "danger",
        value: message.requestId,
      },
    );
    if (message.masked.length > 0) {
      buttons.push({
        type: "button",
        action_id: SLACK_IDS.reveal,
        text: { type: "plain_text", text: "Reveal masked fields" },
        value: message.requestId,
      });
    }
  }
  if (options.consoleUrl !== undefined) {
    buttons.push({
      type: "button",
      action_id: "writ_open_console",
      text: { type: "plain_text", text: "Open in writ" },
      url: consoleLink(options.consoleUrl, message.requestId),
    });
  }
  if (buttons.length > 0)
    blocks.push({ type: "actions", block_id: "writ_actions", elements: buttons });
  blocks.push({
    type: "context",
    elements: [{ type: "mrkdwn", text: `writ request \`${message.requestId}\`` }],
  });
  // The top-level text is mrkdwn too, and is what notifications and previews show.
  return { text: e(message.summary), blocks };
}

/** `<console>/requests/<id>`, whatever the console URL ends with. */
export function consoleLink(consoleUrl: string, requestId: string): string {
  return `${consoleUrl.replace(/\/+$/, "")}/requests/${encodeURIComponent(requestId)}`;
}

/**
 * The decision an owner's DM announces. It comes from the event, not from the
 * request as it stands when the DM goes out: after a delay (Slack down for a
 * while) an approved request may have expired uncollected, and one denied by
 * policy at collection still carries its approvals.
 */
export type OwnerDecision = "approved" | "denied" | "denied_by_policy" | "expired";

const DECISION_HEADLINES: Record<OwnerDecision, string> = {
  approved: "Approved",
  denied: "Denied",
  denied_by_policy: "Denied by policy",
  expired: "Expired",
};

/** The DM to an agent's owner once its request is decided. */
export function ownerDecisionMessage(
  message: ReviewMessage,
  decision: OwnerDecision,
  options: SlackRenderOptions = {},
): { text: string; blocks: Slack.KnownBlock[] } {
  const e = escapeMrkdwn;
  const outcome =
    decision === "approved"
      ? `was approved by ${message.approvals.map((a) => person(a.reviewer, options)).join(", ")}`
      : decision === "denied_by_policy"
        ? "was denied by policy: the policies in force when the agent came to collect its credential no longer allow it"
        : decision === "expired"
          ? "expired before enough approvals"
          : message.denial !== undefined
            ? `was denied by ${person(message.denial.reviewer, options)}: ${e(message.denial.reason)}`
            : "was denied";
  const text = `Your agent ${mrkdwnCode(message.agent)}'s request for ${mrkdwnCode(message.action)} on ${mrkdwnCode(message.resource)} ${outcome}.`;
  return {
    text: e(clip(`${message.agent}: ${DECISION_HEADLINES[decision]}`, 150)),
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: clip(text, 3000) } },
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: `writ request \`${message.requestId}\`` }],
      },
    ],
  };
}

/** The ephemeral answer to "Reveal": the masked values, for the clicking reviewer only. */
export function revealMessage(
  requestId: string,
  fields: Readonly<Record<string, JsonValue>>,
): { text: string; blocks: Slack.KnownBlock[] } {
  // Shown like the other context values: one line each, formatting inert.
  const lines = Object.entries(fields).map(
    ([name, value]) =>
      `• ${mrkdwnCode(clip(escapeControls(name), 64))}: ${mrkdwnCode(contextValueText(value))}`,
  );
  return {
    text: "Masked fields (only you see this; your reveal is recorded)",
    blocks: [
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: fitLines(
            `*Masked fields of \`${requestId}\`* (only you see this; your reveal is recorded)`,
            lines,
            3000,
          ),
        },
      },
    ],
  };
}

/** Where a denial's outcome is reported back: carried through the modal, signed by Slack. */
export interface DenyModalMetadata {
  readonly requestId: string;
  readonly channelId?: string;
}

/** The modal Deny opens: a reason is required. */
export function denyModal(message: ReviewMessage, metadata: DenyModalMetadata): Slack.View {
  return {
    type: "modal",
    callback_id: SLACK_IDS.denyModal,
    private_metadata: JSON.stringify(metadata),
    title: { type: "plain_text", text: "Deny request" },
    submit: { type: "plain_text", text: "Deny" },
    close: { type: "plain_text", text: "Cancel" },
    blocks: [
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: clip(
            `${mrkdwnCode(message.agent)} asks for ${mrkdwnCode(message.action)} on ${mrkdwnCode(message.resource)}.`,
            3000,
          ),
        },
      },
      {
        type: "input",
        block_id: SLACK_IDS.reasonBlock,
        label: { type: "plain_text", text: "Why are you denying it?" },
        element: {
          type: "plain_text_input",
          action_id: SLACK_IDS.reasonInput,
          multiline: true,
          min_length: 1,
          max_length: 2000,
        },
      },
    ],
  };
}
