import type { RecordedEvent } from "../domain/events.js";
import type { JsonValue } from "../domain/json.js";
import type { Actor } from "../domain/principal.js";
import {
  type AccessRequest,
  type AfterReview,
  type RequestStatus,
  STAGE_DEADLINES,
} from "../domain/request.js";
import { maskedFields } from "../domain/reveal.js";
import { unmetRequirements } from "../domain/review.js";

/**
 * What a reviewer needs to see about a request, once, independent of any chat
 * system: Slack blocks, the Teams card and webhook payloads are renderings of
 * it. It never holds a masked value: a renderer cannot leak what it never gets.
 * Text is plain (no markup), bounded and on one line: control characters and
 * bidirectional controls are shown as visible escapes (see `escapeControls`).
 * Renderers escape it for their format.
 */
export interface ReviewMessage {
  readonly requestId: string;
  readonly status: RequestStatus;
  /** Whether reviewers can still act (pending and before its deadline). */
  readonly open: boolean;
  /** One line, e.g. "Approval needed" or "Approved". */
  readonly headline: string;
  /** One sentence for previews and plain-text fallbacks. */
  readonly summary: string;
  readonly agent: string;
  readonly owner: string;
  readonly onBehalfOf?: string;
  readonly action: string;
  readonly resource: string;
  readonly credentialType: string;
  readonly audience?: string;
  readonly ttlSeconds: number;
  readonly reason?: string;
  readonly ticket?: { readonly id: string; readonly url?: string };
  /** Context fields in the agent's order; masked ones carry no value. */
  readonly context: readonly ContextEntry[];
  /** How many context fields did not fit. */
  readonly contextOmitted: number;
  /** Names of the fields the policy masks (present in the context). */
  readonly masked: readonly string[];
  /** The policies that decided; for an approval, the ones that asked for it. */
  readonly policies: readonly string[];
  readonly requirements: readonly RequirementProgress[];
  readonly approvals: readonly ApprovalEntry[];
  readonly denial?: {
    readonly reviewer: string;
    readonly at: number;
    readonly reason: string;
    readonly channel: string;
  };
  readonly createdAt: number;
  /** The end of the current stage: approval deadline, collection deadline or credential expiry. */
  readonly expiresAt: number;
  /**
   * The deadline reviewers should see, while one still applies: "Approve by",
   * "Collect by" or "Credential expires". Absent once the request has ended or
   * its credential was used.
   */
  readonly deadline?: { readonly label: string; readonly at: number };
  /** What happened after the request was opened, oldest first. */
  readonly timeline: readonly TimelineEntry[];
  /**
   * Set once the request was escalated because nobody had decided it: the
   * groups told then, when, and how long it had waited by then.
   */
  readonly escalation?: {
    readonly groups: readonly string[];
    readonly at: number;
    readonly waitedSeconds: number;
    /** One line, e.g. "Escalated to security-oncall after 10 minutes without a decision". */
    readonly text: string;
  };
  /**
   * Set when the policy asks for a review after the fact (`@review_after`):
   * one line saying by whom, and whether it was recorded; once it was, the
   * review itself.
   */
  readonly afterReview?: {
    readonly groups: readonly string[];
    readonly text: string;
    readonly recorded?: AfterReviewEntry;
  };
}

/** A review after the fact as recorded. */
export interface AfterReviewEntry {
  readonly reviewer: string;
  readonly verdict: "ok" | "concern";
  readonly at: number;
  readonly channel: string;
  /** The reviewer's note, escaped by `escapeControls` and bounded like a deny reason. */
  readonly note?: string;
}

export interface ContextEntry {
  readonly name: string;
  /** Absent when masked. Strings as sent, other JSON values as JSON; escaped by `escapeControls`. */
  readonly value?: string;
  readonly masked: boolean;
}

export interface RequirementProgress {
  readonly groups: readonly string[];
  readonly quorum: number;
  /** Distinct approvers counted toward this requirement so far. */
  readonly approvals: number;
}

export interface ApprovalEntry {
  readonly reviewer: string;
  readonly at: number;
  readonly channel: string;
}

export interface TimelineEntry {
  readonly eventId: string;
  readonly type: string;
  readonly at: number;
  /** Plain text, e.g. "Token used by billing-api". */
  readonly text: string;
}

/** An event as far as the message needs it; what notifiers keep per request. */
export type TimelineEvent = Pick<RecordedEvent, "id" | "type" | "time" | "actor" | "data">;

export interface MessageOptions {
  /** Link for tickets, with `{ticket}` where the id goes. */
  readonly ticketUrl?: string;
}

/**
 * Bounds, in UTF-16 code units (see {@link clip}), that keep every rendering
 * within chat limits (Slack: 3,000 a section).
 */
export const LIMITS = {
  text: 500,
  contextValue: 200,
  contextFields: 10,
  timeline: 20,
} as const;

const HEADLINES: Record<RequestStatus, string> = {
  pending: "Approval needed",
  approved: "Approved",
  issued: "Approved, credential issued",
  used: "Approved, credential used",
  expired: "Expired",
  revoked: "Credential revoked",
  completed: "Approved, completed",
  denied: "Denied",
  cancelled: "Cancelled",
};

/**
 * What happened to `request`, which its status alone does not always say: an
 * approved request can be revoked or expire before any credential exists, and
 * one denied at collection was denied by policy, not by a reviewer.
 */
function headlineOf(request: AccessRequest, status: RequestStatus): string {
  const issued = request.credential !== undefined;
  switch (status) {
    case "pending":
      return request.escalatedAt !== undefined ? "Approval needed, escalated" : HEADLINES.pending;
    case "expired":
      if (issued) return "Credential expired unused";
      return request.status !== "pending" && unmetRequirements(request).length === 0
        ? "Expired, credential not collected"
        : HEADLINES.expired;
    case "revoked":
      return issued ? HEADLINES.revoked : "Revoked before collection";
    case "denied":
      return request.reviews.some((r) => r.verdict === "deny")
        ? HEADLINES.denied
        : "Denied by policy";
    default:
      return HEADLINES[status];
  }
}

const GRAPHEMES = new Intl.Segmenter("en", { granularity: "grapheme" });

/**
 * Shortens `text` to at most `max` UTF-16 code units, marking the cut with
 * "…". Chat platforms state their limits in "characters" without saying how
 * they count; Slack's API counts UTF-16 units, where an emoji is two, and text
 * within `max` units is within `max` code points too, so this bound holds
 * however a platform counts. The cut falls between two user-perceived
 * characters (grapheme clusters): it never leaves half a surrogate pair, which
 * is not valid text, nor half an emoji sequence or an accented letter.
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let kept = 0;
  for (const { index, segment } of GRAPHEMES.segment(text)) {
    // One unit stays free for the ellipsis.
    if (index + segment.length > max - 1) break;
    kept = index + segment.length;
  }
  return `${text.slice(0, kept)}…`;
}

/**
 * Characters that change how the text around them reads rather than showing
 * as themselves: C0 and C1 controls (newlines included), line and paragraph
 * separators, bidirectional marks, embeddings, overrides and isolates, and
 * unpaired surrogates. An agent could use them to start lines that look like
 * writ's own (an approvals line), reverse what a reviewer reads, or drive a
 * terminal.
 */
const CONTROLS = /[\p{Cc}\p{Cs}\u061C\u200E\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069]/gu;

const NAMED_CONTROLS: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * Shows every control character and bidirectional control in `text` as a
 * visible escape (`\n`, `\u202E`), so agent text stays on one line and reads
 * in the order it was written, whichever channel renders it.
 */
export function escapeControls(text: string): string {
  return text.replace(
    CONTROLS,
    (ch) =>
      NAMED_CONTROLS[ch] ??
      `\\u${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`,
  );
}

/** Agent text as a message shows it: controls escaped, then clipped to `max`. */
function plain(text: string, max: number): string {
  return clip(escapeControls(text), max);
}

/**
 * A context value as reviewers see it: a string as sent, anything else as
 * JSON (strings nested in it included), with controls escaped and clipped.
 */
export function contextValueText(value: JsonValue | undefined): string {
  const shown = typeof value === "string" ? value : JSON.stringify(value ?? null);
  return plain(shown, LIMITS.contextValue);
}

function str(value: JsonValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function who(actor: Actor): string {
  return actor.kind === "system" ? "writ" : actor.id;
}

/** A wait in words, to the minute: "45 seconds", "10 minutes", "2 hours 5 minutes". */
export function waitText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const unit = (n: number, name: string) => `${n} ${name}${n === 1 ? "" : "s"}`;
  if (s < 60) return unit(s, "second");
  const minutes = Math.floor(s / 60);
  if (minutes < 120) return unit(minutes, "minute");
  const rest = minutes % 60;
  return `${unit(Math.floor(minutes / 60), "hour")}${rest > 0 ? ` ${unit(rest, "minute")}` : ""}`;
}

function escalationText(groups: readonly string[], waitedSeconds: number): string {
  return `Escalated to ${groups.join(", ") || "?"} after ${waitText(waitedSeconds)} without a decision`;
}

/** The line an event adds to a message, or undefined for events shown elsewhere. */
function timelineText(event: TimelineEvent): string | undefined {
  const { data } = event;
  switch (event.type) {
    case "request.approved": {
      const approvers = Array.isArray(data.approvers) ? data.approvers.map(String) : [];
      return data.by === "policy"
        ? "Approved by policy"
        : `Approved by ${approvers.join(", ") || "reviewers"}`;
    }
    case "request.denied":
      return data.by === "policy"
        ? "Denied by policy"
        : `Denied by ${str(data.reviewer) ?? who(event.actor)}`;
    case "request.expired":
      return data.previous_status === "approved"
        ? "Expired: the credential was not collected in time"
        : "Expired before enough approvals";
    case "request.cancelled":
      return "Cancelled by the agent";
    case "request.escalated":
      return escalationText(
        Array.isArray(data.groups) ? data.groups.map(String) : [],
        typeof data.waited_seconds === "number" ? data.waited_seconds : 0,
      );
    case "credential.issued":
      return `Credential issued (${str(data.credential_type) ?? "?"}), expires ${str(data.expires_at) ?? "?"}`;
    case "credential.expired":
      return "Credential expired unused";
    case "credential.revoked":
      // A reviewer's revoke of an approved request ends it before any credential exists.
      return data.cause === "revoked" && data.previous_status === "approved"
        ? `Revoked by ${who(event.actor)} before the credential was collected`
        : `Credential revoked by ${who(event.actor)}`;
    case "credential.completed":
      return "The agent reported the action done";
    case "token.used":
      return `Token used by ${str(data.resource_server) ?? who(event.actor)}`;
    case "token.replay_blocked":
      return `Replay of the used token blocked (${str(data.resource_server) ?? who(event.actor)})`;
    case "token.rejected":
      return `Token presented after the credential was ${str(data.status) ?? "ended"}, rejected (${str(data.resource_server) ?? who(event.actor)})`;
    case "sensitive.revealed":
      return `${str(data.reviewer) ?? who(event.actor)} revealed the masked fields`;
    default:
      return undefined;
  }
}

/** Whether an event belongs on a message's timeline. */
export function isTimelineEvent(event: Pick<TimelineEvent, "type">): boolean {
  return (
    timelineText({
      id: "",
      type: event.type,
      time: 0,
      actor: { kind: "system", id: "" },
      data: {},
    }) !== undefined
  );
}

/**
 * Builds the message for `request` as it stands, with `events` (its events so
 * far, any order, repeats ignored) for what the request state does not keep:
 * token use, blocked replays, reveals.
 */
export function buildReviewMessage(
  request: AccessRequest,
  events: readonly TimelineEvent[],
  now: number,
  options: MessageOptions = {},
): ReviewMessage {
  const masked = maskedFields(request);
  const maskedSet = new Set(masked);
  const names = Object.keys(request.context);
  const context: ContextEntry[] = names.slice(0, LIMITS.contextFields).map((name) =>
    maskedSet.has(name)
      ? { name: plain(name, 64), masked: true }
      : {
          name: plain(name, 64),
          value: contextValueText(request.context[name]),
          masked: false,
        },
  );
  const approvals = request.reviews.filter((r) => r.verdict === "approve");
  const requirements = request.decision.requirements.map((requirement) => ({
    groups: [...requirement.groups],
    quorum: requirement.quorum,
    approvals: new Set(
      approvals
        .filter((a) => a.groups.some((g) => requirement.groups.includes(g)))
        .map((a) => a.reviewerId),
    ).size,
  }));
  const denial = request.reviews.find((r) => r.verdict === "deny");
  const seen = new Set<string>();
  const timeline: TimelineEntry[] = [];
  for (const event of [...events].sort((a, b) => a.time - b.time)) {
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    const text = timelineText(event);
    if (text !== undefined) {
      timeline.push({
        eventId: event.id,
        type: event.type,
        at: event.time,
        text: plain(text, 300),
      });
    }
  }
  const open = request.status === "pending" && now < request.expiresAt;
  const status: RequestStatus = request.status === "pending" && !open ? "expired" : request.status;
  const ticket =
    request.ticket === undefined
      ? undefined
      : {
          id: plain(request.ticket, 256),
          ...(options.ticketUrl !== undefined
            ? { url: options.ticketUrl.replace("{ticket}", encodeURIComponent(request.ticket)) }
            : {}),
        };
  const headline = headlineOf(request, status);
  const deadlineLabel = STAGE_DEADLINES[status];
  const escalated = request.decision.escalation;
  const escalation =
    request.escalatedAt === undefined || escalated === undefined
      ? undefined
      : {
          groups: [...escalated.groups],
          at: request.escalatedAt,
          waitedSeconds: Math.floor((request.escalatedAt - request.createdAt) / 1000),
          text: plain(
            escalationText(
              escalated.groups,
              Math.floor((request.escalatedAt - request.createdAt) / 1000),
            ),
            LIMITS.text,
          ),
        };
  return {
    requestId: request.id,
    status,
    open,
    headline,
    summary: plain(
      `${headline}: ${request.agentId} asks for ${request.action} on ${request.resource}`,
      LIMITS.text,
    ),
    agent: request.agentId,
    owner: request.owner,
    ...(request.onBehalfOf !== undefined ? { onBehalfOf: request.onBehalfOf } : {}),
    action: request.action,
    resource: plain(request.resource, LIMITS.text),
    credentialType: request.credentialType,
    ...(request.audience !== undefined ? { audience: plain(request.audience, 256) } : {}),
    ttlSeconds: request.grantedTtlSeconds,
    ...(request.reason !== undefined ? { reason: plain(request.reason, LIMITS.text) } : {}),
    ...(ticket !== undefined ? { ticket } : {}),
    context,
    contextOmitted: Math.max(0, names.length - LIMITS.contextFields),
    masked,
    policies: [...request.decision.policies],
    requirements,
    approvals: approvals.map((a) => ({ reviewer: a.reviewerId, at: a.at, channel: a.channel })),
    ...(denial !== undefined
      ? {
          denial: {
            reviewer: denial.reviewerId,
            at: denial.at,
            reason: plain(denial.comment ?? "", LIMITS.text),
            channel: denial.channel,
          },
        }
      : {}),
    createdAt: request.createdAt,
    expiresAt: request.expiresAt,
    ...(deadlineLabel !== undefined
      ? { deadline: { label: deadlineLabel, at: request.expiresAt } }
      : {}),
    timeline: timeline.slice(-LIMITS.timeline),
    ...(escalation !== undefined ? { escalation } : {}),
    ...(request.decision.reviewAfter !== undefined
      ? {
          afterReview: {
            groups: [...request.decision.reviewAfter],
            text: plain(afterReviewText(request), LIMITS.text),
            ...(request.reviewedAfter !== undefined
              ? { recorded: afterReviewEntry(request.reviewedAfter) }
              : {}),
          },
        }
      : {}),
  };
}

function afterReviewEntry(review: AfterReview): AfterReviewEntry {
  return {
    reviewer: review.reviewerId,
    verdict: review.verdict,
    at: review.at,
    channel: review.channel,
    ...(review.note !== undefined ? { note: plain(review.note, LIMITS.text) } : {}),
  };
}

/** "To be reviewed after the fact by security", or who reviewed it and how. */
function afterReviewText(request: AccessRequest): string {
  const done = request.reviewedAfter;
  const groups = (request.decision.reviewAfter ?? []).join(", ");
  if (done === undefined) return `To be reviewed after the fact by ${groups}`;
  const verdict = done.verdict === "ok" ? "no concern" : `concern: ${done.note ?? ""}`;
  return `Reviewed after the fact by ${done.reviewerId}: ${verdict}`;
}
