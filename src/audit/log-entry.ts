import { hash } from "node:crypto";
import type { RecordedEvent } from "../domain/events.js";
import type { JsonObject } from "../domain/json.js";
import { canonicalJson } from "./canonical-json.js";

/**
 * The `prev` of the first entry (seq 1): 64 zeros, the hex form of an all-zero
 * SHA-256. A log whose first entry names any other predecessor is not a whole log.
 */
export const GENESIS_HASH = "0".repeat(64);

/**
 * One line of the audit log file. `hash` is the lowercase hex SHA-256 of the RFC 8785
 * canonical JSON of every other field; `prev` is the previous entry's `hash`, which
 * chains the entries so that an edit, deletion, insertion or reordering shows.
 */
export interface LogEntry {
  /** Position in the log: 1 for the first entry, then +1 per entry, no gaps. */
  readonly seq: number;
  /** When the event happened, ISO-8601 UTC with milliseconds. */
  readonly time: string;
  /** The event type (`noun.verb`). Kept as a string so old logs outlive new types. */
  readonly type: string;
  readonly request_id: string;
  readonly actor: { readonly kind: string; readonly id: string };
  readonly data: JsonObject;
  /** The id the event stream gave the event, linking the entry to the stream. */
  readonly event_id: string;
  readonly prev: string;
  readonly hash: string;
}

/** A log entry before its hash is computed: the exact input of {@link entryHash}. */
export type UnhashedLogEntry = Omit<LogEntry, "hash">;

/**
 * The hash of an entry: lowercase hex SHA-256 over the canonical JSON of its fields
 * other than `hash` (a `hash` field, if present, is ignored).
 */
export function entryHash(entry: UnhashedLogEntry): string {
  return hash("sha256", canonicalForm(canonicalFields(entry)), "hex");
}

/** The canonical JSON of each hashed field of an entry (the actor's two fields apart). */
interface CanonicalFields {
  readonly seq: string;
  readonly time: string;
  readonly type: string;
  readonly requestId: string;
  readonly actorKind: string;
  readonly actorId: string;
  readonly data: string;
  readonly eventId: string;
  readonly prev: string;
}

function canonicalFields(entry: UnhashedLogEntry): CanonicalFields {
  return {
    seq: canonicalJson(entry.seq),
    time: canonicalJson(entry.time),
    type: canonicalJson(entry.type),
    requestId: canonicalJson(entry.request_id),
    actorKind: canonicalJson(entry.actor.kind),
    actorId: canonicalJson(entry.actor.id),
    data: canonicalJson(entry.data),
    eventId: canonicalJson(entry.event_id),
    prev: canonicalJson(entry.prev),
  };
}

/**
 * Exactly `canonicalJson` of the entry's eight hashed fields, with the top-level and
 * actor keys written in their sorted order instead of sorted per call: verifying a
 * large log spends most of its time here.
 */
function canonicalForm(c: CanonicalFields): string {
  return (
    `{"actor":{"id":${c.actorId},"kind":${c.actorKind}}` +
    `,"data":${c.data}` +
    `,"event_id":${c.eventId}` +
    `,"prev":${c.prev}` +
    `,"request_id":${c.requestId}` +
    `,"seq":${c.seq}` +
    `,"time":${c.time}` +
    `,"type":${c.type}}`
  );
}

/**
 * The line of an entry, without its newline. Fields appear in reading order (seq
 * first, hash last); the hash does not depend on it, only on the canonical form.
 * Each value is written in its canonical JSON, which parses back to the same value.
 */
function lineOf(c: CanonicalFields, hashJson: string): string {
  return (
    `{"seq":${c.seq},"time":${c.time},"type":${c.type},"request_id":${c.requestId}` +
    `,"actor":{"kind":${c.actorKind},"id":${c.actorId}},"data":${c.data}` +
    `,"event_id":${c.eventId},"prev":${c.prev},"hash":${hashJson}}`
  );
}

/** The entry recording `event` at `seq` after `prev`, before its hash; checked. */
function unhashedEntry(event: RecordedEvent, seq: number, prev: string): UnhashedLogEntry {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new TypeError("seq must be a positive integer");
  }
  if (!isHash(prev)) {
    throw new TypeError("prev must be a lowercase hex SHA-256");
  }
  if (!Number.isFinite(event.time)) {
    throw new TypeError("event time must be a finite number of milliseconds");
  }
  return {
    seq,
    time: new Date(event.time).toISOString(),
    type: event.type,
    request_id: event.requestId,
    // Copy only the recorded fields: an actor object may carry more than kind and id.
    actor: { kind: event.actor.kind, id: event.actor.id },
    data: event.data,
    event_id: event.id,
    prev,
  };
}

/**
 * The log entry recording `event` at position `seq`, chained to `prev`. Throws a
 * `TypeError` if the event cannot be represented (a bad time, non-JSON data).
 */
export function toEntry(event: RecordedEvent, seq: number, prev: string): LogEntry {
  return toEntryLine(event, seq, prev).entry;
}

/**
 * The log entry recording `event` and the line that writes it, from one canonical
 * serialization of its fields: the hash and the line share it. Throws as `toEntry`.
 */
export function toEntryLine(
  event: RecordedEvent,
  seq: number,
  prev: string,
): { readonly entry: LogEntry; readonly line: string } {
  const unhashed = unhashedEntry(event, seq, prev);
  const fields = canonicalFields(unhashed);
  const entryHashHex = hash("sha256", canonicalForm(fields), "hex");
  return { entry: { ...unhashed, hash: entryHashHex }, line: lineOf(fields, `"${entryHashHex}"`) };
}

/** The line written for an entry, without its newline (see `toEntryLine`). */
export function serializeEntry(entry: LogEntry): string {
  return lineOf(canonicalFields(entry), canonicalJson(entry.hash));
}

/**
 * Why `line` is not the line writ writes for `entry`, the value parsed from it, or
 * undefined if it is. First the hash must match (`"hash mismatch"`); then the line
 * must be exactly the canonical line. `JSON.parse` accepts many texts for one value:
 * whitespace, escapes, `2.30e1` for 23, keys in any order, a key written twice (the
 * last copy wins, while grep, a human or a first-wins parser sees the first). Only
 * the line writ writes may verify, so the bytes read are the bytes the hash covers.
 */
export function entryLineFault(entry: LogEntry, line: string): string | undefined {
  let fields: CanonicalFields;
  try {
    fields = canonicalFields(entry);
  } catch {
    // Parsed JSON is always representable, except strings holding lone surrogates.
    return "entry is not canonicalizable";
  }
  if (hash("sha256", canonicalForm(fields), "hex") !== entry.hash) return "hash mismatch";
  // The hash matched a hex digest, so it needs no escaping. The line is rebuilt from
  // the pieces the hash was computed from: one serialization per entry, not two.
  if (lineOf(fields, `"${entry.hash}"`) !== line) return "entry is not written in canonical form";
  return undefined;
}

const ENTRY_FIELD_COUNT = 9;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const HASH_LENGTH = 64;

/** Whether `value` is a lowercase hex SHA-256, the form of `prev` and `hash`. */
export function isHash(value: unknown): value is string {
  return typeof value === "string" && value.length === 64 && HASH_PATTERN.test(value);
}

/**
 * `value` (a parsed log line) as a {@link LogEntry}, or a short reason why it is not
 * one. Only checks the shape; whether the hash and chain hold is for the caller to
 * check ({@link entryLineFault}), and a caller reading `prev` or `hash` must compare
 * them, not trust them.
 * Extra fields are refused: they would be covered by the hash yet unknown to readers.
 */
export function readLogEntry(value: unknown): LogEntry | string {
  if (!isPlainObject(value)) return "entry is not a JSON object";
  const entry = value as Record<string, unknown>;
  if (Object.keys(entry).length !== ENTRY_FIELD_COUNT) return "entry has missing or unknown fields";
  if (!Number.isSafeInteger(entry.seq) || (entry.seq as number) < 1) return "bad seq";
  if (typeof entry.time !== "string") return "bad time";
  if (typeof entry.type !== "string") return "bad type";
  if (typeof entry.request_id !== "string") return "bad request_id";
  const actor = entry.actor;
  if (
    !isPlainObject(actor) ||
    Object.keys(actor).length !== 2 ||
    typeof actor.kind !== "string" ||
    typeof actor.id !== "string"
  ) {
    return "bad actor";
  }
  if (!isPlainObject(entry.data)) return "bad data";
  if (typeof entry.event_id !== "string") return "bad event_id";
  // Length only: a reader compares both to real hashes (the previous entry's, the
  // recomputed one), which settles their form without a pattern match per line.
  if (typeof entry.prev !== "string" || entry.prev.length !== HASH_LENGTH) return "bad prev";
  if (typeof entry.hash !== "string" || entry.hash.length !== HASH_LENGTH) return "bad hash";
  return value as unknown as LogEntry;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
