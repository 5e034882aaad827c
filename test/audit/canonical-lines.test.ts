import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CheckpointSigner } from "../../src/audit/checkpoint-key.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import {
  locate,
  readSegments,
  TAMPER_SUITE_LAYOUT,
  tempCheckpointedLog,
  verifySignedBy,
  writeSegments,
} from "./checkpointed-log.js";
import { sampleEvent } from "./sample-events.js";

// JSON.parse accepts many texts for one value. Each edit below leaves the parsed entry
// (so its hash) unchanged, yet a reader of the line's bytes can see something else: a
// duplicated key shows its first copy to grep, a human or a first-wins parser, while
// the hash covers the last. Only the exact line writ writes may verify.

// The tamper suite's layout: 50 entries in 4 KiB segments, signed every 10 entries, so
// seq 23 sits in a middle segment, covered by the signed checkpoint at seq 30.
const COUNT = TAMPER_SUITE_LAYOUT.count;
const SEQ = 23;
const NOT_CANONICAL = "entry is not written in canonical form";

let root: string;
let dir: string;
let signer: CheckpointSigner;

beforeEach(async () => {
  ({ root, dir, signer } = await tempCheckpointedLog("writ-canonical-", TAMPER_SUITE_LAYOUT));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const verify = () => verifySignedBy(dir, signer);

/** Rewrites the line of entry `seq` with `edit`, which must change it; returns where it is. */
async function editEntry(seq: number, edit: (line: string) => string) {
  const segments = await readSegments(dir);
  const at = locate(segments, seq);
  const lines = segments[at.segment]?.lines as string[];
  const edited = edit(lines[at.line] as string);
  expect(edited).not.toBe(lines[at.line]);
  expect(JSON.parse(edited)).toEqual(at.entry);
  lines[at.line] = edited;
  await writeSegments(dir, segments);
  return { segment: segments[at.segment]?.name as string, line: at.line + 1 };
}

/** What verify reports for entry SEQ, found at `where`, written differently. */
const notCanonicalAt = (where: { segment: string; line: number }) => ({
  ok: false,
  entries: SEQ - 1,
  firstBadSeq: SEQ,
  ...where,
  reason: NOT_CANONICAL,
});

describe("verifyAuditLog accepts only the exact line writ writes", () => {
  it("verifies the untouched log", async () => {
    expect(await verify()).toMatchObject({ ok: true, entries: COUNT });
  });

  it("reports an entry with duplicated keys that parses to the same entry", async () => {
    const where = await editEntry(SEQ, (line) =>
      line
        .replace('"id":"agent-billing-export"', '"id":"mallory","id":"agent-billing-export"')
        .replace('"data":{', '"data":{"grant_id":"grt_FAKE",'),
    );
    expect(await verify()).toEqual(notCanonicalAt(where));
  });

  it("reports an entry whose seq is written as 2.30e1", async () => {
    const where = await editEntry(SEQ, (line) => line.replace(`"seq":${SEQ}`, '"seq" :  2.30e1'));
    expect(await verify()).toEqual(notCanonicalAt(where));
  });

  it.each([
    ["whitespace", (l: string) => l.replace('"type":', ' "type" : ')],
    ["an escaped character", (l: string) => l.replace('"kind":"agent"', '"kind":"\\u0061gent"')],
    [
      "a number written differently",
      (l: string) => l.replace('"ttl_seconds":900', '"ttl_seconds":9.0e2'),
    ],
    [
      "a number beyond double precision",
      (l: string) => l.replace('"ttl_seconds":900', '"ttl_seconds":900.0000000000000001'),
    ],
    [
      "keys in another order",
      (l: string) => l.replace(/^\{("seq":\d+),("time":"[^"]*")/, "{$2,$1"),
    ],
  ])("reports an entry rewritten with %s", async (_what, edit) => {
    const where = await editEntry(SEQ, edit);
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: SEQ,
      ...where,
      reason: NOT_CANONICAL,
    });
  });

  it("reports a checkpoint line with the same meaning written differently", async () => {
    const path = join(dir, "checkpoints.jsonl");
    const lines = (await readFile(path, "utf8")).split("\n");
    // The fourth line is the checkpoint of seq 30 (the first is the empty log's).
    lines[3] = (lines[3] as string).replace('"seq":30', '"seq":99,"seq":3.0e1');
    await writeFile(path, lines.join("\n"));
    expect(await verify()).toMatchObject({
      ok: false,
      firstBadSeq: 30,
      segment: "checkpoints.jsonl",
      line: 4,
      reason: "checkpoint: checkpoint is not written in canonical form",
    });
  });
});

describe("openFileAuditLog accepts only the exact line writ writes", () => {
  const open = () => openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } });

  it("refuses a last entry with the same meaning written differently, and leaves it as is", async () => {
    const segments = await readSegments(dir);
    const last = segments.at(-1) as { name: string; lines: string[] };
    await editEntry(COUNT, (line) =>
      line.replace('"id":"agent-billing-export"', '"id":"mallory","id":"agent-billing-export"'),
    );
    const tampered = await readFile(join(dir, last.name), "utf8");
    await expect(open()).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining(NOT_CANONICAL),
    });
    expect(await readFile(join(dir, last.name), "utf8")).toBe(tampered);
  });

  it("refuses a last checkpoint with the same meaning written differently", async () => {
    const path = join(dir, "checkpoints.jsonl");
    const text = await readFile(path, "utf8");
    const tampered = text.replace(/"seq":50,/, '"seq" : 50,');
    expect(tampered).not.toBe(text);
    await writeFile(path, tampered);
    await expect(open()).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("not written in canonical form"),
    });
    expect(await readFile(path, "utf8")).toBe(tampered);
  });

  it("refuses a last entry that is not valid UTF-8, though it decodes to the same text", async () => {
    const log = await open();
    await log.append([sampleEvent(COUNT + 1, { note: "x\ufffdy" })]);
    await log.close();
    const name = (await readSegments(dir)).at(-1)?.name as string;
    const bytes = await readFile(join(dir, name));
    // The writer wrote U+FFFD as EF BF BD; a lone 0xFF decodes to U+FFFD too, if leniently.
    const at = bytes.lastIndexOf(Buffer.from("x\ufffdy"));
    const tampered = Buffer.concat([
      bytes.subarray(0, at + 1),
      Buffer.from([0xff]),
      bytes.subarray(at + 4),
    ]);
    expect(tampered.toString("utf8")).toBe(bytes.toString("utf8"));
    await writeFile(join(dir, name), tampered);
    await expect(open()).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("invalid UTF-8"),
    });
    expect(await readFile(join(dir, name))).toEqual(tampered);
  });
});
