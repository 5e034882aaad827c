import type { JsonObject } from "./json.js";
import type { Actor } from "./principal.js";

/** Every event type writ records. Names are `noun.verb`, past tense. */
export const EVENT_TYPES = [
  "request.created",
  "request.decided",
  "approval.granted",
  "approval.denied",
  "approval.refused",
  // A reviewer opened a review form in a chat channel (Slack's deny modal); no state changes.
  "approval.form_opened",
  // Still pending when the policy said to escalate: the escalation groups are told.
  "request.escalated",
  "request.approved",
  "request.denied",
  "request.expired",
  "request.cancelled",
  "credential.issued",
  "credential.expired",
  "credential.revoked",
  "credential.completed",
  // An expired credential could not be ended at its source (the IAM deny was never written).
  "credential.revocation_failed",
  "token.used",
  "token.replay_blocked",
  // A genuine token presented after its credential ended (revoked, completed, expired); no state changes.
  "token.rejected",
  // A member of a @review_after group looked back at a request once its credential was issued.
  "request.reviewed_after",
  "sensitive.revealed",
  // A notification channel first delivered a request's approval prompt; no state changes.
  "notification.sent",
  // Belongs to no request (request_id ""): opening the audit log cut a torn write.
  "audit.repaired",
  // Belongs to no request: a log resumed after events trimmed from the stream, which it lacks.
  "audit.gap",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The `requestId` of an event about writ itself rather than about one request
 * (`audit.repaired`, `audit.gap`). Such events are in the stream and the log
 * like any other; no request has this id, so reading one request's events never
 * returns them.
 */
export const NO_REQUEST = "";

/**
 * A fact about a request, produced by the domain. It carries ids, hashes and
 * public metadata only: never a token, key or secret.
 */
export interface DomainEvent {
  readonly type: EventType;
  /** The request it belongs to, or {@link NO_REQUEST} for an event about writ itself. */
  readonly requestId: string;
  readonly actor: Actor;
  /** Milliseconds since the epoch, from the injected clock. */
  readonly time: number;
  readonly data: JsonObject;
}

/** A domain event once the store has recorded it, with its position in the stream. */
export interface RecordedEvent extends DomainEvent {
  /** The stream position; opaque, increasing, usable as an `after` cursor. */
  readonly id: string;
}
