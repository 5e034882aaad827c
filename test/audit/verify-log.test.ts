import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  entryHash,
  GENESIS_HASH,
  type LogEntry,
  serializeEntry,
  toEntry,
} from "../../src/audit/log-entry.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import type { JsonObject } from "../../src/domain/json.js";
import { sampleEvent } from "./sample-events.js";

let root: string;
let path: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-verify-"));
  path = join(root, "audit.jsonl");
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A valid chain of `count` entries, the n-th built from `sampleEvent(n, dataOf(n))`. */
function chain(count: number, dataOf?: (n: number) => JsonObject): LogEntry[] {
  const entries: LogEntry[] = [];
  let prev = GENESIS_HASH;
  for (let n = 1; n <= count; n++) {
    const entry = toEntry(sampleEvent(n, dataOf?.(n)), n, prev);
    entries.push(entry);
    prev = entry.hash;
  }
  return entries;
}

function linesOf(entries: readonly LogEntry[]): string[] {
  return entries.map(serializeEntry);
}

async function writeLines(lines: readonly string[]): Promise<void> {
  await writeFile(path, lines.map((line) => `${line}\n`).join(""));
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no item at ${index}`);
  return item;
}

describe("verifyLogFile", () => {
  it("accepts an empty log", async () => {
    await writeFile(path, "");
    expect(await verifyLogFile(path)).toEqual({
      ok: true,
      entries: 0,
      lastSeq: 0,
      lastHash: GENESIS_HASH,
    });
  });

  it("accepts an intact log and returns its last seq and hash", async () => {
    const entries = chain(5);
    await writeLines(linesOf(entries));
    expect(await verifyLogFile(path)).toEqual({
      ok: true,
      entries: 5,
      lastSeq: 5,
      lastHash: at(entries, 4).hash,
    });
  });

  it("detects an edited field", async () => {
    const lines = linesOf(chain(5));
    lines[2] = at(lines, 2).replace('"grt_3"', '"grt_X"');
    await writeLines(lines);
    expect(await verifyLogFile(path)).toEqual({
      ok: false,
      entries: 2,
      firstBadSeq: 3,
      line: 3,
      reason: "hash mismatch",
    });
  });

  it("detects an edited entry whose hash was recomputed, at the next entry", async () => {
    const entries = chain(5);
    const forged = toEntry(sampleEvent(3, { grant_id: "grt_X" }), 3, at(entries, 1).hash);
    const lines = linesOf(entries);
    lines[2] = serializeEntry(forged);
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      firstBadSeq: 4,
      line: 4,
      reason: "prev does not match the previous entry's hash",
    });
  });

  it("detects a deleted entry", async () => {
    const lines = linesOf(chain(5));
    lines.splice(2, 1);
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      entries: 2,
      firstBadSeq: 3,
      line: 3,
      reason: "seq 3 expected, found 4",
    });
  });

  it("detects an inserted entry even with a correct hash and prev", async () => {
    const entries = chain(5);
    const forged = toEntry(sampleEvent(99), 3, at(entries, 1).hash);
    const lines = linesOf(entries);
    lines.splice(2, 0, serializeEntry(forged));
    await writeLines(lines);
    // The forged entry itself links correctly; the break shows at the entry it displaced.
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      entries: 3,
      firstBadSeq: 4,
      line: 4,
      reason: "seq 4 expected, found 3",
    });
  });

  it("detects swapped entries", async () => {
    const lines = linesOf(chain(5));
    [lines[2], lines[3]] = [at(lines, 3), at(lines, 2)];
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      firstBadSeq: 3,
      line: 3,
      reason: "seq 3 expected, found 4",
    });
  });

  it("detects swapped entries renumbered to hide the swap", async () => {
    const entries = chain(5);
    const third = at(entries, 2);
    const fourth = at(entries, 3);
    const lines = linesOf(entries);
    lines[2] = serializeEntry({ ...fourth, seq: 3 });
    lines[3] = serializeEntry({ ...third, seq: 4 });
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      firstBadSeq: 3,
      reason: "prev does not match the previous entry's hash",
    });
  });

  it("detects a wrong genesis", async () => {
    const first = toEntry(sampleEvent(1), 1, "f".repeat(64));
    await writeLines([serializeEntry(first)]);
    expect(await verifyLogFile(path)).toEqual({
      ok: false,
      entries: 0,
      firstBadSeq: 1,
      line: 1,
      reason: "prev of the first entry is not the genesis hash",
    });
  });

  it("detects a log that does not start at seq 1", async () => {
    const entries = chain(3);
    await writeLines(linesOf(entries.slice(1)));
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      firstBadSeq: 1,
      reason: "seq 1 expected, found 2",
    });
  });

  it("names malformed lines", async () => {
    const valid = linesOf(chain(3));
    const cases: [string, string][] = [
      ['{"seq":2,', "malformed JSON"],
      ["", "empty line"],
      ["[1,2]", "entry is not a JSON object"],
      [
        at(valid, 1).replace('"seq":2,', '"seq":2,"extra":true,'),
        "entry has missing or unknown fields",
      ],
      [at(valid, 1).replace('"seq":2', '"seq":"2"'), "bad seq"],
      [at(valid, 1).replace(/"hash":"[0-9a-f]+"/, '"hash":"abc"'), "bad hash"],
    ];
    for (const [bad, reason] of cases) {
      await writeLines([at(valid, 0), bad, at(valid, 2)]);
      expect(await verifyLogFile(path), reason).toEqual({
        ok: false,
        entries: 1,
        firstBadSeq: 2,
        line: 2,
        reason,
      });
    }
  });

  it("detects a hash that is the right length but not lowercase hex", async () => {
    const lines = linesOf(chain(2));
    const entry = JSON.parse(at(lines, 1)) as LogEntry;
    lines[1] = serializeEntry({ ...entry, hash: entry.hash.toUpperCase() });
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({ ok: false, firstBadSeq: 2 });
  });

  it("reports a final line without a newline as incomplete", async () => {
    const lines = linesOf(chain(3));
    await writeFile(path, `${at(lines, 0)}\n${at(lines, 1)}\n${at(lines, 2)}`);
    expect(await verifyLogFile(path)).toEqual({
      ok: false,
      entries: 2,
      firstBadSeq: 3,
      line: 3,
      reason: "incomplete final line (no newline)",
    });
  });

  it("refuses invalid UTF-8 that would decode to the same text", async () => {
    const entries = chain(3, (n) => ({ note: n === 2 ? "x\ufffdy" : "ok" }));
    await writeLines(linesOf(entries));
    const bytes = await readFile(path);
    // U+FFFD is EF BF BD; a lone 0xFF also decodes to U+FFFD if decoding is lenient.
    const at2 = bytes.indexOf(Buffer.from("x\ufffdy"));
    const tampered = Buffer.concat([
      bytes.subarray(0, at2 + 1),
      Buffer.from([0xff]),
      bytes.subarray(at2 + 4),
    ]);
    await writeFile(path, tampered);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      firstBadSeq: 2,
      reason: "invalid UTF-8",
    });
  });

  it("verifies logs larger than its read buffer, multi-byte text included", async () => {
    const entries = chain(6000, (n) => ({ note: `entry ${n} 😀 ü ${"é".repeat(n % 50)}` }));
    const lines = linesOf(entries);
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 6000 });

    lines[4999] = at(lines, 4999).replace("entry 5000", "entry 5001");
    await writeLines(lines);
    expect(await verifyLogFile(path)).toMatchObject({
      ok: false,
      entries: 4999,
      firstBadSeq: 5000,
      line: 5000,
      reason: "hash mismatch",
    });
  });

  it("verifies a line longer than its read buffer", async () => {
    const entries = chain(3, (n) => ({ blob: n === 2 ? "z".repeat(3 * 1024 * 1024) : "small" }));
    await writeLines(linesOf(entries));
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 3 });
  });

  // The hash covers the entry's value (its canonical form), so field order cannot
  // change it; but only the line writ writes verifies, so a reordered line is reported.
  it("hashes an entry independently of its fields' order, but verifies only the line writ writes", async () => {
    const entry = at(chain(1), 0);
    const reordered = {
      hash: entry.hash,
      data: entry.data,
      prev: entry.prev,
      seq: entry.seq,
      actor: { id: entry.actor.id, kind: entry.actor.kind },
      type: entry.type,
      time: entry.time,
      event_id: entry.event_id,
      request_id: entry.request_id,
    };
    expect(entryHash(reordered)).toBe(entry.hash);
    await writeLines([JSON.stringify(reordered)]);
    expect(await verifyLogFile(path)).toEqual({
      ok: false,
      entries: 0,
      firstBadSeq: 1,
      line: 1,
      reason: "entry is not written in canonical form",
    });
    await writeLines([serializeEntry(entry)]);
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 1 });
  });
});
