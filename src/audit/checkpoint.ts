import { type KeyObject, verify } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";
import { isHash } from "./log-entry.js";

/**
 * A signed statement "the log's entry `seq` has hash `hash`", written to
 * `checkpoints.jsonl` every N entries, every T seconds, at start and at shutdown.
 * The chain shows edits, deletions, insertions and reordering; a checkpoint also
 * shows a log cut short: the entry it names must still be there with that hash.
 */
export interface Checkpoint {
  /** The seq of the last entry covered; 0 for an empty log. */
  readonly seq: number;
  /** That entry's `hash`; the genesis hash for seq 0. */
  readonly hash: string;
  /** When the checkpoint was made (RFC 3339, writ's clock). */
  readonly time: string;
  /** RFC 7638 thumbprint of the Ed25519 public key that signed it. */
  readonly key_id: string;
  /** Ed25519 signature (base64url, 64 bytes) over {@link checkpointMessage}. */
  readonly signature: string;
}

/**
 * Binds a signature to this use: a signature made for anything else with the same
 * key (there is none today) can never pass as a checkpoint.
 */
export const CHECKPOINT_PURPOSE = "writ audit checkpoint v1";

/**
 * The bytes a checkpoint signs: the UTF-8 of the RFC 8785 canonical JSON of
 * `{ "hash", "purpose", "seq", "time" }`, e.g.
 * `{"hash":"4b0a…","purpose":"writ audit checkpoint v1","seq":1000,"time":"2026-01-15T09:00:00.000Z"}`.
 */
export function checkpointMessage(seq: number, hash: string, time: string): Buffer {
  return Buffer.from(canonicalJson({ hash, purpose: CHECKPOINT_PURPOSE, seq, time }), "utf8");
}

const FIELD_COUNT = 5;
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;
const KEY_ID = /^[A-Za-z0-9_-]{43}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** `value` (a parsed line of `checkpoints.jsonl`) as a checkpoint, or why it is not one. */
export function readCheckpoint(value: unknown): Checkpoint | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "checkpoint is not a JSON object";
  }
  const cp = value as Record<string, unknown>;
  if (Object.keys(cp).length !== FIELD_COUNT) return "checkpoint has missing or unknown fields";
  if (!Number.isSafeInteger(cp.seq) || (cp.seq as number) < 0) return "bad checkpoint seq";
  if (!isHash(cp.hash)) return "bad checkpoint hash";
  if (typeof cp.time !== "string" || !TIME.test(cp.time) || Number.isNaN(Date.parse(cp.time))) {
    return "bad checkpoint time";
  }
  if (typeof cp.key_id !== "string" || !KEY_ID.test(cp.key_id)) return "bad checkpoint key_id";
  if (typeof cp.signature !== "string" || !SIGNATURE.test(cp.signature)) {
    return "bad checkpoint signature";
  }
  return value as Checkpoint;
}

/** The line written for a checkpoint, without its newline. */
export function serializeCheckpoint(cp: Checkpoint): string {
  return JSON.stringify({
    seq: cp.seq,
    hash: cp.hash,
    time: cp.time,
    key_id: cp.key_id,
    signature: cp.signature,
  });
}

/**
 * Why `line` is not the line writ writes for `cp`, the value parsed from it, or
 * undefined if it is. As for entries, a line with the same meaning written otherwise
 * (a key written twice, whitespace, `3.0e1` for 30) must not pass for a checkpoint.
 */
export function checkpointLineFault(cp: Checkpoint, line: string): string | undefined {
  return serializeCheckpoint(cp) === line
    ? undefined
    : "checkpoint is not written in canonical form";
}

/** Whether `cp` carries a valid signature by `publicKey` (Ed25519 only). */
export function checkpointSignatureValid(cp: Checkpoint, publicKey: KeyObject): boolean {
  if (publicKey.asymmetricKeyType !== "ed25519") return false;
  try {
    return verify(
      null,
      checkpointMessage(cp.seq, cp.hash, cp.time),
      publicKey,
      Buffer.from(cp.signature, "base64url"),
    );
  } catch {
    return false;
  }
}
