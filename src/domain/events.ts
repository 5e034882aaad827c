import type { JsonObject } from "./json.js";
import type { Actor } from "./principal.js";

/** Every event type writ records. Names are `noun.verb`, past tense. */
export const EVENT_TYPES = [
  "request.created",
  "request.decided",
  "approval.granted",
  "approval.denied",
  "approval.refused",
  "request.approved",
  "request.denied",
  "request.expired",
  "request.cancelled",
  "credential.issued",
  "credential.expired",
  "credential.revoked",
  "credential.completed",
  "token.used",
  "token.replay_blocked",
  "sensitive.revealed",
  // Belongs to no request (request_id ""): opening the audit log cut a torn write.
  "audit.repaired",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/**
 * A fact about a request, produced by the domain. It carries ids, hashes and
 * public metadata only: never a token, key or secret.
 */
export interface DomainEvent {
  readonly type: EventType;
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
