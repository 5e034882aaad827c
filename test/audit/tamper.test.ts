import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { appendFile, mkdtemp, open, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Checkpoint } from "../../src/audit/checkpoint.js";
import type { CheckpointSigner } from "../../src/audit/checkpoint-key.js";
import { type LogEntry, serializeEntry, toEntry } from "../../src/audit/log-entry.js";
import { verifyAuditLog } from "../../src/audit/verify-log.js";
import {
  locate,
  readSegments,
  TAMPER_SUITE_LAYOUT,
  tempCheckpointedLog,
  testSigner,
  verifySignedBy,
  writeCheckpointedLog,
  writeSegments,
} from "./checkpointed-log.js";
import { sampleEvent } from "./sample-events.js";

// 50 entries in segments of ~12, signed every 10 entries: every tamper below lands in
// a middle segment, so the chain is checked across segment boundaries too.
const COUNT = TAMPER_SUITE_LAYOUT.count;

let root: string;
let dir: string;
let signer: CheckpointSigner;

beforeEach(async () => {
  ({ root, dir, signer } = await tempCheckpointedLog("writ-tamper-", TAMPER_SUITE_LAYOUT));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const verify = () => verifySignedBy(dir, signer);

async function checkpoints(): Promise<Checkpoint[]> {
  const text = await readFile(join(dir, "checkpoints.jsonl"), "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Checkpoint);
}

describe("verifyAuditLog on an intact log", () => {
  it("verifies every segment and checkpoint", async () => {
    const segments = await readSegments(dir);
    expect(segments.length).toBeGreaterThanOrEqual(4);
    const result = await verify();
    expect(result).toMatchObject({
      ok: true,
      entries: COUNT,
      lastSeq: COUNT,
      segments: segments.length,
      lastCheckpoint: { seq: COUNT },
    });
    // At open (the empty log), then every 10 entries.
    expect((await checkpoints()).map((c) => c.seq)).toEqual([0, 10, 20, 30, 40, 50]);
  });

  it("reports progress over every byte of every segment", async () => {
    const seen: [number, number][] = [];
    await verifyAuditLog({
      dir,
      keys: new Map([[signer.keyId, signer.publicKey]]),
      onProgress: (done, total) => seen.push([done, total]),
    });
    const last = seen.at(-1);
    expect(last?.[0]).toBe(last?.[1]);
    expect(seen.length).toBeGreaterThanOrEqual(4);
  });
});

describe("verifyAuditLog finds each kind of tampering, at the right seq", () => {
  it("an edited entry", async () => {
    const segments = await readSegments(dir);
    const at = locate(segments, 23);
    const lines = segments[at.segment]?.lines as string[];
    lines[at.line] = (lines[at.line] as string).replace('"grt_23"', '"grt_99"');
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 23,
      entries: 22,
      segment: segments[at.segment]?.name,
      line: at.line + 1,
      reason: "hash mismatch",
    });
  });

  it("a deleted entry", async () => {
    const segments = await readSegments(dir);
    const at = locate(segments, 23);
    segments[at.segment]?.lines.splice(at.line, 1);
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 23,
      reason: "seq 23 expected, found 24",
    });
  });

  it("an inserted entry", async () => {
    const segments = await readSegments(dir);
    const at = locate(segments, 23);
    const forged = toEntry(sampleEvent(999), 23, "f".repeat(64));
    segments[at.segment]?.lines.splice(at.line, 0, serializeEntry(forged));
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 23,
      reason: "prev does not match the previous entry's hash",
    });
  });

  it("an inserted entry that links correctly breaks the entry it displaced", async () => {
    const segments = await readSegments(dir);
    const at = locate(segments, 23);
    const prev = locate(segments, 22).entry.hash;
    segments[at.segment]?.lines.splice(
      at.line,
      0,
      serializeEntry(toEntry(sampleEvent(999), 23, prev)),
    );
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 24,
      reason: "seq 24 expected, found 23",
    });
  });

  it("reordered entries", async () => {
    const segments = await readSegments(dir);
    const a = locate(segments, 25);
    const b = locate(segments, 26);
    const lines = segments[a.segment]?.lines as string[];
    expect(b.segment).toBe(a.segment);
    [lines[a.line], lines[b.line]] = [lines[b.line] as string, lines[a.line] as string];
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 25,
      reason: "seq 25 expected, found 26",
    });
  });

  it("a truncated tail, through the last checkpoint", async () => {
    const segments = await readSegments(dir);
    const at = locate(segments, 46);
    const last = segments[at.segment] as { name: string; lines: string[] };
    last.lines.splice(at.line);
    await writeSegments(dir, segments.slice(0, at.segment + 1));
    for (const extra of segments.slice(at.segment + 1)) await unlink(join(dir, extra.name));
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 46,
      entries: 45,
      reason: "the log ends at seq 45 but a signed checkpoint covers seq 50: its tail was cut",
    });
  });

  it("a deleted last segment", async () => {
    const segments = await readSegments(dir);
    const last = segments.at(-1) as { name: string; lines: string[] };
    const firstSeq = (JSON.parse(last.lines[0] as string) as LogEntry).seq;
    await unlink(join(dir, last.name));
    expect(await verify()).toMatchObject({ ok: false, firstBadSeq: firstSeq });
  });

  it("a deleted middle segment", async () => {
    const segments = await readSegments(dir);
    const second = segments[1] as { name: string; lines: string[] };
    await unlink(join(dir, second.name));
    const firstSeq = (JSON.parse(second.lines[0] as string) as LogEntry).seq;
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: firstSeq,
      reason: `segment ${second.name} is missing`,
    });
  });

  it("entries rewritten with fresh hashes, at the checkpoint that covers them", async () => {
    const segments = await readSegments(dir);
    // Rewrite 23..50 consistently: the chain alone holds, only the signature can tell.
    let prev = locate(segments, 22).entry.hash;
    for (let seq = 23; seq <= COUNT; seq++) {
      const at = locate(segments, seq);
      const forged = toEntry(sampleEvent(seq, { grant_id: `forged_${seq}` }), seq, prev);
      (segments[at.segment]?.lines as string[])[at.line] = serializeEntry(forged);
      prev = forged.hash;
    }
    await writeSegments(dir, segments);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 21,
      entries: 20,
      reason: "entry 30 differs from its signed checkpoint: entries after seq 20 were rewritten",
    });
  });

  it("a torn final line", async () => {
    const segments = await readSegments(dir);
    await appendFile(join(dir, (segments.at(-1) as { name: string }).name), '{"seq":51,"ti');
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 51,
      reason: "incomplete final line (no newline)",
    });
  });
});

describe("verifyAuditLog checks the checkpoints themselves", () => {
  async function rewriteCheckpoints(change: (cps: Checkpoint[]) => Checkpoint[]) {
    const cps = change(await checkpoints());
    await writeFile(
      join(dir, "checkpoints.jsonl"),
      cps.map((c) => `${JSON.stringify(c)}\n`).join(""),
    );
  }

  it("refuses an altered checkpoint", async () => {
    await rewriteCheckpoints((cps) =>
      cps.map((c) => (c.seq === 30 ? { ...c, time: "2030-01-01T00:00:00.000Z" } : c)),
    );
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 30,
      segment: "checkpoints.jsonl",
      line: 4,
      reason: "checkpoint: the signature does not verify",
    });
  });

  it("refuses a checkpoint signed by another key", async () => {
    const other = await testSigner(join(root, "other"));
    const forged = await mkdtemp(join(root, "forged-"));
    await writeCheckpointedLog(forged, other, {
      count: 3,
      segmentMaxBytes: 4096,
      everyEntries: 10,
    });
    const foreign = (await readFile(join(forged, "checkpoints.jsonl"), "utf8")).split("\n")[0];
    await appendFile(join(dir, "checkpoints.jsonl"), `${foreign}\n`);
    expect(await verify()).toMatchObject({
      ok: false,
      reason: `checkpoint: signed by an unknown key (${other.keyId})`,
    });
  });

  it("refuses a log without checkpoints, whose end nothing proves", async () => {
    await unlink(join(dir, "checkpoints.jsonl"));
    expect(await verify()).toMatchObject({ ok: false, firstBadSeq: COUNT + 1 });
    await writeFile(join(dir, "checkpoints.jsonl"), "");
    expect(await verify()).toMatchObject({ ok: false, firstBadSeq: COUNT + 1 });
  });

  it("refuses checkpoints that go back", async () => {
    await rewriteCheckpoints((cps) => [...cps, cps[1] as Checkpoint]);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 10,
      reason: "checkpoint: seq goes back from 50",
    });
  });

  it("refuses a torn checkpoint line offline, and ignores it on a live log", async () => {
    await appendFile(join(dir, "checkpoints.jsonl"), '{"seq":50,"ha');
    expect(await verify()).toMatchObject({
      ok: false,
      reason: "checkpoint: incomplete final line (no newline)",
    });
    const live = await verifyAuditLog({
      dir,
      keys: new Map([[signer.keyId, signer.publicKey]]),
      upToSeq: COUNT,
    });
    expect(live).toMatchObject({ ok: true, entries: COUNT });
  });

  it("verifies a live log up to its last fsynced entry, ignoring a line being written", async () => {
    const segments = await readSegments(dir);
    await appendFile(join(dir, (segments.at(-1) as { name: string }).name), '{"seq":51,"ti');
    const live = await verifyAuditLog({
      dir,
      keys: new Map([[signer.keyId, signer.publicKey]]),
      upToSeq: 45,
    });
    expect(live).toMatchObject({ ok: true, entries: 45, lastCheckpoint: { seq: 40 } });
  });
});

describe("verifyAuditLog on files that are not regular files", () => {
  // A copy handed over for review may hold anything a tarball can: a FIFO would
  // block the read forever, a device (a link to /dev/zero) would never end.
  const fifos: string[] = [];

  async function replaceWithFifo(name: string): Promise<void> {
    const path = join(dir, name);
    await unlink(path);
    await promisify(execFile)("mkfifo", [path]);
    fifos.push(path);
  }

  afterEach(async () => {
    // A read blocked on a FIFO holds a thread of the pool until a writer comes.
    for (const fifo of fifos.splice(0)) {
      const writer = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => {});
      await writer?.close();
    }
  });

  it.skipIf(process.platform === "win32")("a segment that is a FIFO", async () => {
    const segments = await readSegments(dir);
    const second = segments[1] as { name: string; lines: string[] };
    await replaceWithFifo(second.name);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: (JSON.parse(second.lines[0] as string) as LogEntry).seq,
      segment: second.name,
      reason: `${second.name} is not a regular file`,
    });
  });

  it.skipIf(process.platform === "win32")("a checkpoint file that is a FIFO", async () => {
    await replaceWithFifo("checkpoints.jsonl");
    expect(await verify()).toMatchObject({
      ok: false,
      segment: "checkpoints.jsonl",
      reason: "checkpoint: checkpoints.jsonl is not a regular file",
    });
  });
});
