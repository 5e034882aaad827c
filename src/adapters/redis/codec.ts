import { WritError } from "../../domain/errors.js";
import { type DomainEvent, EVENT_TYPES, type RecordedEvent } from "../../domain/events.js";
import type { JsonObject } from "../../domain/json.js";
import type { Actor } from "../../domain/principal.js";
import { type AccessRequest, REQUEST_STATUSES } from "../../domain/request.js";
import { compareStreamIds as compareIds } from "../../domain/stream-id.js";

/**
 * How events and requests are written to Redis and read back. Stream entries
 * are plain fields so that a SIEM reading `XREAD` needs no writ code:
 * `type`, `request_id` ("" for an event about writ itself, which belongs to no
 * request), `time` (ms since the epoch), `actor` and `data` (JSON).
 */

/** Arguments per event in the write scripts, in this order. */
export const EVENT_ARGS = 5;

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);

/** What a stored record that writ cannot read turns into: fail closed, say nothing of it. */
export function corrupt(): WritError {
  return new WritError("store_unavailable", "The store holds a record writ cannot read.");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The script arguments of events: five strings each. Malformed events are a programming error. */
export function eventArgs(events: readonly DomainEvent[]): string[] {
  const args: string[] = [];
  for (const event of events) {
    if (!EVENT_TYPE_SET.has(event.type)) throw new TypeError(`unknown event type "${event.type}"`);
    if (!Number.isSafeInteger(event.time) || event.time < 0) {
      throw new TypeError("event time must be a non-negative integer of milliseconds");
    }
    args.push(
      event.type,
      event.requestId,
      String(event.time),
      JSON.stringify({ kind: event.actor.kind, id: event.actor.id }),
      JSON.stringify(event.data),
    );
  }
  return args;
}

/** A stream entry as an event; throws `store_unavailable` for an entry writ did not write. */
export function decodeEvent(id: string, fields: unknown): RecordedEvent {
  if (!isObject(fields)) throw corrupt();
  const { type, request_id: requestId, time, actor, data } = fields;
  if (
    typeof type !== "string" ||
    !EVENT_TYPE_SET.has(type) ||
    typeof requestId !== "string" ||
    typeof time !== "string" ||
    !/^\d{1,16}$/.test(time) ||
    typeof actor !== "string" ||
    typeof data !== "string"
  ) {
    throw corrupt();
  }
  let parsedActor: unknown;
  let parsedData: unknown;
  try {
    parsedActor = JSON.parse(actor);
    parsedData = JSON.parse(data);
  } catch {
    throw corrupt();
  }
  if (
    !isObject(parsedActor) ||
    typeof parsedActor.kind !== "string" ||
    typeof parsedActor.id !== "string" ||
    !isObject(parsedData)
  ) {
    throw corrupt();
  }
  return {
    id,
    type: type as DomainEvent["type"],
    requestId,
    actor: parsedActor as unknown as Actor,
    time: Number(time),
    data: parsedData as JsonObject,
  };
}

/** Entries as node-redis returns them from XRANGE / XREAD: `{ id, message }`. */
export function decodeEntries(reply: unknown): RecordedEvent[] {
  if (!Array.isArray(reply)) throw corrupt();
  return reply.map((entry: unknown) => {
    if (!isObject(entry) || typeof entry.id !== "string") throw corrupt();
    return decodeEvent(entry.id, entry.message);
  });
}

const STATUS_SET: ReadonlySet<unknown> = new Set(REQUEST_STATUSES);
const CREDENTIAL_TYPES: ReadonlySet<unknown> = new Set(["jwt", "aws"]);
const EFFECTS: ReadonlySet<unknown> = new Set(["allow", "approve", "deny"]);
const VERDICTS: ReadonlySet<unknown> = new Set(["approve", "deny"]);

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStrings = (v: unknown): boolean =>
  Array.isArray(v) && v.every((s) => typeof s === "string");
const isOptional = (v: unknown, check: (v: unknown) => boolean): boolean =>
  v === undefined || check(v);
const isString = (v: unknown): boolean => typeof v === "string";

function isDecision(v: unknown): boolean {
  return (
    isObject(v) &&
    EFFECTS.has(v.effect) &&
    isStrings(v.policies) &&
    Array.isArray(v.requirements) &&
    v.requirements.every((r) => isObject(r) && isStrings(r.groups) && isNumber(r.quorum)) &&
    isNumber(v.ttlSeconds) &&
    isNumber(v.approvalTimeoutSeconds) &&
    typeof v.reasonRequired === "boolean" &&
    isStrings(v.sensitiveFields) &&
    isOptional(v.awsSourceIps, (ips) => Array.isArray(ips) && ips.every(isStrings))
  );
}

function isReview(v: unknown): boolean {
  return (
    isObject(v) &&
    typeof v.reviewerId === "string" &&
    VERDICTS.has(v.verdict) &&
    isStrings(v.groups) &&
    isOptional(v.comment, isString) &&
    isNumber(v.at) &&
    typeof v.channel === "string"
  );
}

function isCredential(v: unknown): boolean {
  return (
    isObject(v) &&
    CREDENTIAL_TYPES.has(v.type) &&
    typeof v.id === "string" &&
    isNumber(v.issuedAt) &&
    isNumber(v.expiresAt) &&
    isOptional(v.digest, isString) &&
    isOptional(v.attributes, (a) => isObject(a) && Object.values(a).every(isString))
  );
}

/**
 * Whether a parsed record has the shape of a request, in every field that
 * decisions and views read: a record that parses but lacks one (written by
 * hand, or by something other than writ) must fail closed as unreadable,
 * never reach the service and fail there as an internal error.
 */
function isRequest(v: Record<string, unknown>): boolean {
  return (
    typeof v.id === "string" &&
    Number.isSafeInteger(v.version) &&
    STATUS_SET.has(v.status) &&
    typeof v.agentId === "string" &&
    typeof v.owner === "string" &&
    typeof v.action === "string" &&
    typeof v.resource === "string" &&
    CREDENTIAL_TYPES.has(v.credentialType) &&
    isObject(v.context) &&
    [v.audience, v.reason, v.ticket, v.onBehalfOf].every((f) => isOptional(f, isString)) &&
    isOptional(v.ttlSeconds, isNumber) &&
    isDecision(v.decision) &&
    [v.grantedTtlSeconds, v.createdAt, v.updatedAt, v.expiresAt].every(isNumber) &&
    Array.isArray(v.reviews) &&
    v.reviews.every(isReview) &&
    isOptional(v.credential, isCredential) &&
    isOptional(v.completedAt, isNumber)
  );
}

/**
 * A stored request's JSON as a request; a fresh object on every call. With
 * `id`, the record must be that request's: a record stored under another
 * request's key is unreadable, never answered in its place.
 */
export function decodeRequest(json: unknown, id?: string): AccessRequest {
  if (typeof json !== "string") throw corrupt();
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw corrupt();
  }
  if (!isObject(value) || !isRequest(value) || (id !== undefined && value.id !== id)) {
    throw corrupt();
  }
  return value as unknown as AccessRequest;
}

const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;
const MAX_U64 = "18446744073709551615";

/** Whether a part of a stream id fits Redis's unsigned 64 bits. */
function fitsU64(digits: string): boolean {
  return digits.length < MAX_U64.length || (digits.length === MAX_U64.length && digits <= MAX_U64);
}

/** Whether `id` is a Redis stream id: two unsigned 64-bit integers, "<ms>-<seq>". */
export function isStreamId(id: string): boolean {
  const match = STREAM_ID.exec(id);
  return match !== null && fitsU64(match[1] as string) && fitsU64(match[2] as string);
}

/** Orders two valid stream ids: negative, zero or positive. */
export function compareStreamIds(a: string, b: string): number {
  if (!isStreamId(a) || !isStreamId(b)) throw new TypeError("not a stream id");
  return compareIds(a, b);
}
