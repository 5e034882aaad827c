import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkpointMessage, serializeCheckpoint } from "../../src/audit/checkpoint.js";
import type { CheckpointSigner } from "../../src/audit/checkpoint-key.js";
import { GENESIS_HASH, type LogEntry, serializeEntry, toEntry } from "../../src/audit/log-entry.js";
import { verifyAuditLog } from "../../src/audit/verify-log.js";
import { testSigner, verifySignedBy } from "./checkpointed-log.js";
import { sampleEvent } from "./sample-events.js";

// A checkpoint for every entry: the most checkpoints a log can carry, each of which
// the chain must meet. Enough of them that holding them all would show in the heap.
const COUNT = 9000;

let root: string;
let signer: CheckpointSigner;
let good: LogEntry[];
let signed: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-checkpoint-reader-"));
  signer = await testSigner(root);
  good = chain(COUNT);
  signed = checkpointLines(good);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function chain(count: number, from = 1, prevHash = GENESIS_HASH, note = ""): LogEntry[] {
  const entries: LogEntry[] = [];
  let prev = prevHash;
  for (let n = from; n < from + count; n++) {
    const entry = toEntry(sampleEvent(n, { note: `${note}${n}` }), n, prev);
    entries.push(entry);
    prev = entry.hash;
  }
  return entries;
}

/** The checkpoint lines for `entries`: one for the empty log, then one per entry. */
function checkpointLines(entries: readonly LogEntry[]): string {
  const lines: string[] = [];
  for (const { seq, hash } of [{ seq: 0, hash: GENESIS_HASH }, ...entries]) {
    const time = new Date(1_700_000_000_000 + seq * 1000).toISOString();
    const signature = signer.sign(checkpointMessage(seq, hash, time));
    lines.push(serializeCheckpoint({ seq, hash, time, key_id: signer.keyId, signature }));
  }
  return lines.map((l) => `${l}\n`).join("");
}

/** A log of `entries` in two segments, with `checkpoints`, in a new directory. */
async function writeLog(name: string, entries: readonly LogEntry[], checkpoints: string) {
  const dir = join(root, name);
  await mkdir(dir);
  const half = Math.floor(entries.length / 2);
  const segment = (part: readonly LogEntry[]) => part.map((e) => `${serializeEntry(e)}\n`).join("");
  await writeFile(join(dir, "audit-000001.jsonl"), segment(entries.slice(0, half)));
  await writeFile(join(dir, "audit-000002.jsonl"), segment(entries.slice(half)));
  await writeFile(join(dir, "checkpoints.jsonl"), checkpoints);
  return dir;
}

/** A full collection, so that what the heap holds is what is still referenced. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("verifyAuditLog streams checkpoints.jsonl", () => {
  it("holds only the checkpoints the chain has yet to meet, however many the file has", async () => {
    const dir = await writeLog("intact", good, signed);
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    let held = 0;
    const result = await verifyAuditLog({
      dir,
      keys: new Map([[signer.keyId, signer.publicKey]]),
      // Called as each chunk of a segment is read: the heap then holds whatever
      // verification keeps across the whole walk.
      onProgress: () => {
        collectGarbage();
        held = Math.max(held, process.memoryUsage().heapUsed - before);
      },
    });
    expect(result).toMatchObject({
      ok: true,
      entries: COUNT,
      segments: 2,
      checkpoints: COUNT + 1,
      lastCheckpoint: { seq: COUNT },
    });
    // All 9,001 checkpoints held at once take about 3.5 MB; a run's worth, a tenth of it.
    expect(held).toBeLessThan(1.5 * 1024 * 1024);
  });

  it("meets every checkpoint on the way, in every run of lines", async () => {
    // Entries from 6,001 on rewritten with fresh hashes, the chain intact: only the
    // checkpoint of entry 6,001, deep in the second segment, can tell.
    const rewritten = [
      ...good.slice(0, 6000),
      ...chain(COUNT - 6000, 6001, (good[5999] as LogEntry).hash, "x"),
    ];
    const dir = await writeLog("rewritten", rewritten, signed);
    expect(await verifySignedBy(dir, signer)).toMatchObject({
      ok: false,
      entries: 6000,
      firstBadSeq: 6001,
      segment: "audit-000002.jsonl",
      line: 1501,
      reason:
        "entry 6001 differs from its signed checkpoint: entries after seq 6000 were rewritten",
    });
  });

  it("refuses a checkpoint line too long to be one, without reading it whole", async () => {
    const three = good.slice(0, 3);
    const dir = await writeLog("long-line", three, checkpointLines(three));
    await writeFile(join(dir, "checkpoints.jsonl"), `${"x".repeat(64 * 1024)}\n`, { flag: "a" });
    expect(await verifySignedBy(dir, signer)).toMatchObject({
      ok: false,
      firstBadSeq: 4,
      segment: "checkpoints.jsonl",
      line: 5,
      reason: "checkpoint: line too long",
    });
  });
});
