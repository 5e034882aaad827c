import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CheckpointSigner, loadCheckpointKey } from "../../src/audit/checkpoint-key.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import type { LogEntry } from "../../src/audit/log-entry.js";
import { listSegments } from "../../src/audit/segments.js";
import { type AuditVerifyResult, verifyAuditLog } from "../../src/audit/verify-log.js";
import { sampleEvents } from "./sample-events.js";

/** A fresh checkpoint key in `dir`. */
export async function testSigner(dir: string): Promise<CheckpointSigner> {
  return (await loadCheckpointKey(join(dir, "checkpoint.json"), { create: true })).signer;
}

/**
 * Writes `count` sample entries through the real writer: segments of
 * `segmentMaxBytes`, a checkpoint every `everyEntries`, and one at close.
 */
export async function writeCheckpointedLog(
  dir: string,
  signer: CheckpointSigner,
  options: { count: number; segmentMaxBytes: number; everyEntries: number },
): Promise<void> {
  const log = await openFileAuditLog({
    dir,
    segmentMaxBytes: options.segmentMaxBytes,
    checkpoints: { signer, everyEntries: options.everyEntries, schedule: () => () => {} },
  });
  // One event per append, so each write is its own batch and rotation happens between them.
  for (const event of sampleEvents(1, options.count)) await log.append([event]);
  await log.close();
}

/**
 * The tamper suite's layout: 50 entries in 4 KiB segments (about 12 each), signed
 * every 10 entries, so most entries sit in a middle segment.
 */
export const TAMPER_SUITE_LAYOUT = { count: 50, segmentMaxBytes: 4096, everyEntries: 10 };

/**
 * A fresh directory named from `prefix` (`root`, for the caller to remove) with a
 * checkpoint key, and a log written with `layout` in `dir`, its `audit` folder.
 */
export async function tempCheckpointedLog(
  prefix: string,
  layout: { count: number; segmentMaxBytes: number; everyEntries: number },
): Promise<{ root: string; dir: string; signer: CheckpointSigner }> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const dir = join(root, "audit");
  const signer = await testSigner(root);
  await writeCheckpointedLog(dir, signer, layout);
  return { root, dir, signer };
}

/** Verifies the whole log in `dir`, trusting `signer`'s key alone. */
export function verifySignedBy(dir: string, signer: CheckpointSigner): Promise<AuditVerifyResult> {
  return verifyAuditLog({ dir, keys: new Map([[signer.keyId, signer.publicKey]]) });
}

/** Every line of the log, by segment, for tests that tamper with them. */
export async function readSegments(dir: string): Promise<{ name: string; lines: string[] }[]> {
  const out: { name: string; lines: string[] }[] = [];
  for (const segment of await listSegments(dir)) {
    const text = await readFile(segment.path, "utf8");
    out.push({ name: segment.name, lines: text.split("\n").filter((l) => l.length > 0) });
  }
  return out;
}

export async function writeSegments(
  dir: string,
  segments: readonly { name: string; lines: readonly string[] }[],
): Promise<void> {
  for (const segment of segments) {
    await writeFile(join(dir, segment.name), segment.lines.map((l) => `${l}\n`).join(""));
  }
}

/** Where the entry with `seq` is: segment index and line index. */
export function locate(
  segments: readonly { name: string; lines: readonly string[] }[],
  seq: number,
): { segment: number; line: number; entry: LogEntry } {
  for (const [s, segment] of segments.entries()) {
    for (const [l, line] of segment.lines.entries()) {
      const entry = JSON.parse(line) as LogEntry;
      if (entry.seq === seq) return { segment: s, line: l, entry };
    }
  }
  throw new Error(`no entry ${seq}`);
}
