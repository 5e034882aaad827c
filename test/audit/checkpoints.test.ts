import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Checkpoint, checkpointSignatureValid } from "../../src/audit/checkpoint.js";
import {
  type CheckpointSigner,
  loadCheckpointKey,
  parseCheckpointPublicKeys,
} from "../../src/audit/checkpoint-key.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { GENESIS_HASH } from "../../src/audit/log-entry.js";
import { verifyAuditLog } from "../../src/audit/verify-log.js";
import { ManualClock } from "../support/harness.js";
import { readSegments, testSigner, writeCheckpointedLog } from "./checkpointed-log.js";
import { sampleEvent, sampleEvents } from "./sample-events.js";

let root: string;
let dir: string;
let signer: CheckpointSigner;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-checkpoints-"));
  dir = join(root, "audit");
  signer = await testSigner(root);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function checkpoints(): Promise<Checkpoint[]> {
  const text = await readFile(join(dir, "checkpoints.jsonl"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Checkpoint);
}

/** A schedule the test fires by hand. */
function manualSchedule() {
  let tick: (() => void) | undefined;
  let stopped = false;
  return {
    schedule: (_ms: number, fn: () => void) => {
      tick = fn;
      return () => {
        stopped = true;
      };
    },
    fire: () => tick?.(),
    stopped: () => stopped,
  };
}

const keysOf = (s: CheckpointSigner) => new Map([[s.keyId, s.publicKey]]);

describe("signed checkpoints", () => {
  it("signs the empty log at open, every N entries, on the timer, and at close", async () => {
    const clock = new ManualClock();
    const timer = manualSchedule();
    const witnessed: number[] = [];
    const log = await openFileAuditLog({
      dir,
      clock,
      checkpoints: {
        signer,
        everyEntries: 5,
        everySeconds: 30,
        schedule: timer.schedule,
        onCheckpoint: (cp) => witnessed.push(cp.seq),
      },
    });
    expect(log.lastCheckpoint()).toMatchObject({ seq: 0, hash: GENESIS_HASH });
    await log.append(sampleEvents(1, 3));
    expect((await checkpoints()).map((c) => c.seq)).toEqual([0]);
    await log.append(sampleEvents(4, 2));
    expect((await checkpoints()).map((c) => c.seq)).toEqual([0, 5]);

    await log.append([sampleEvent(6)]);
    clock.advance(30);
    timer.fire();
    await log.append([]); // lets the queued checkpoint run before we look
    await expect.poll(async () => (await checkpoints()).map((c) => c.seq)).toEqual([0, 5, 6]);
    // Nothing new since: the timer signs nothing.
    timer.fire();
    await log.append([sampleEvent(7)]);
    await log.close();
    expect(timer.stopped()).toBe(true);

    const all = await checkpoints();
    expect(all.map((c) => c.seq)).toEqual([0, 5, 6, 7]);
    expect(witnessed).toEqual([0, 5, 6, 7]);
    expect(all[2]?.time).toBe("2026-01-15T09:00:30.000Z");
    for (const cp of all) {
      expect(cp.key_id).toBe(signer.keyId);
      expect(checkpointSignatureValid(cp, signer.publicKey)).toBe(true);
    }
    expect(all.at(-1)?.hash).toBe(log.lastHash());
    expect(await verifyAuditLog({ dir, keys: keysOf(signer) })).toMatchObject({
      ok: true,
      entries: 7,
      checkpoints: 4,
    });
  });

  it("signs on open what a crash left unsigned, and nothing twice", async () => {
    const plain = await openFileAuditLog({ dir });
    await plain.append(sampleEvents(1, 4));
    await plain.close();
    expect(await checkpoints()).toEqual([]);
    const log = await openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } });
    expect(log.lastCheckpoint()?.seq).toBe(4);
    await log.close();
    const again = await openFileAuditLog({
      dir,
      checkpoints: { signer, schedule: () => () => {} },
    });
    await again.close();
    expect((await checkpoints()).map((c) => c.seq)).toEqual([4]);
  });

  it("refuses to open a log that ends before its last checkpoint, and changes nothing", async () => {
    await writeCheckpointedLog(dir, signer, {
      count: 6,
      segmentMaxBytes: 1 << 20,
      everyEntries: 100,
    });
    const [segment] = await readSegments(dir);
    const kept = (segment?.lines ?? [])
      .slice(0, 4)
      .map((l) => `${l}\n`)
      .join("");
    const path = join(dir, segment?.name as string);
    await writeFile(path, kept);
    await expect(
      openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } }),
    ).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("ends at seq 4 but a signed checkpoint covers seq 6"),
    });
    expect(await readFile(path, "utf8")).toBe(kept);
    expect((await readdir(dir)).filter((f) => f.endsWith(".lock"))).toEqual([]);
  });

  it("refuses a signed last entry that is no longer JSON, and cuts nothing", async () => {
    await writeCheckpointedLog(dir, signer, {
      count: 6,
      segmentMaxBytes: 1 << 20,
      everyEntries: 100,
    });
    // The checkpoint written at close covers entry 6, so it was whole on disk: a
    // crash cannot have damaged it, and cutting it would destroy the evidence.
    expect((await checkpoints()).at(-1)?.seq).toBe(6);
    const [segment] = await readSegments(dir);
    const lines = [...(segment?.lines ?? [])];
    lines[5] = (lines[5] as string).replace('{"seq":6,', '{"seq":6 ');
    const damaged = lines.map((l) => `${l}\n`).join("");
    const path = join(dir, segment?.name as string);
    await writeFile(path, damaged);
    const checkpointFile = await readFile(join(dir, "checkpoints.jsonl"), "utf8");
    await appendFile(join(dir, "checkpoints.jsonl"), '{"seq":7,"ha');

    await expect(
      openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } }),
    ).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("ends at seq 5 but a signed checkpoint covers seq 6"),
    });
    expect(await readFile(path, "utf8")).toBe(damaged);
    expect(await readFile(join(dir, "checkpoints.jsonl"), "utf8")).toBe(
      `${checkpointFile}{"seq":7,"ha`,
    );
    // Verify names the damaged entry itself, not a cut tail.
    await writeFile(join(dir, "checkpoints.jsonl"), checkpointFile);
    expect(await verifyAuditLog({ dir, keys: keysOf(signer) })).toMatchObject({
      ok: false,
      firstBadSeq: 6,
      line: 6,
      reason: "malformed JSON",
    });
  });

  it("cuts a torn checkpoint line on open and reports it", async () => {
    await writeCheckpointedLog(dir, signer, {
      count: 2,
      segmentMaxBytes: 1 << 20,
      everyEntries: 100,
    });
    const torn = '{"seq":3,"hash":"ab';
    await appendFile(join(dir, "checkpoints.jsonl"), torn);
    const log = await openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } });
    expect(log.repaired).toEqual({ droppedBytes: 0, checkpointDroppedBytes: torn.length });
    await log.close();
    expect(await verifyAuditLog({ dir, keys: keysOf(signer) })).toMatchObject({ ok: true });
  });
});

describe("segments", () => {
  it("rotate by size, continue the chain across files and across a reopen", async () => {
    const first = await openFileAuditLog({ dir, segmentMaxBytes: 4096 });
    for (const event of sampleEvents(1, 30)) await first.append([event]);
    await first.close();
    const names = (await readSegments(dir)).map((s) => s.name);
    expect(names.length).toBeGreaterThanOrEqual(3);
    expect(names[0]).toBe("audit-000001.jsonl");
    for (const name of names) {
      expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);
    }

    const second = await openFileAuditLog({
      dir,
      segmentMaxBytes: 4096,
      checkpoints: { signer, schedule: () => () => {} },
    });
    expect(second.lastSeq()).toBe(30);
    expect(second.path).toBe(join(dir, names.at(-1) as string));
    await second.append(sampleEvents(31, 5));
    await second.close();
    expect(await verifyAuditLog({ dir, keys: keysOf(signer) })).toMatchObject({
      ok: true,
      entries: 35,
    });
  });

  it("continue from the previous segment when a crash left the last one empty", async () => {
    const first = await openFileAuditLog({ dir, segmentMaxBytes: 4096 });
    for (const event of sampleEvents(1, 15)) await first.append([event]);
    const hash = first.lastHash();
    await first.close();
    const count = (await readSegments(dir)).length;
    const empty = join(dir, `audit-${String(count + 1).padStart(6, "0")}.jsonl`);
    await writeFile(empty, "");
    const log = await openFileAuditLog({ dir, segmentMaxBytes: 4096 });
    expect(log.lastSeq()).toBe(15);
    expect(log.lastHash()).toBe(hash);
    expect(log.path).toBe(empty);
    await log.close();
  });

  it("refuse a log with a missing segment, or an unsegmented log file", async () => {
    const first = await openFileAuditLog({ dir, segmentMaxBytes: 4096 });
    for (const event of sampleEvents(1, 30)) await first.append([event]);
    await first.close();
    await rm(join(dir, "audit-000002.jsonl"));
    await expect(openFileAuditLog({ dir })).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("segment audit-000002.jsonl is missing"),
    });

    const other = join(root, "old");
    const old = await openFileAuditLog({ dir: other });
    await old.close();
    await writeFile(join(other, "audit.jsonl"), "");
    await expect(openFileAuditLog({ dir: other })).rejects.toMatchObject({
      code: "audit_unavailable",
      message: expect.stringContaining("rename it to audit-000001.jsonl"),
    });
  });
});

describe("the checkpoint key", () => {
  it("is made once, private, and reloaded with the same id", async () => {
    const path = join(root, "keys", "cp.json");
    const made = await loadCheckpointKey(path, { create: true });
    expect(made.generated).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, "keys"))).mode & 0o777).toBe(0o700);
    const again = await loadCheckpointKey(path, { create: false });
    expect(again.generated).toBe(false);
    expect(again.signer.keyId).toBe(made.signer.keyId);
    expect(again.signer.publicJwk).toEqual({
      kty: "OKP",
      crv: "Ed25519",
      x: made.signer.publicJwk.x,
      kid: made.signer.keyId,
      alg: "EdDSA",
      use: "sig",
    });
    expect(JSON.stringify(again.signer.publicJwk)).not.toContain('"d"');
  });

  it("is never generated when creation is off, and a damaged file is refused", async () => {
    const path = join(root, "missing.json");
    await expect(loadCheckpointKey(path, { create: false })).rejects.toThrow(/does not exist/);
    await loadCheckpointKey(path, { create: true });
    const stored = JSON.parse(await readFile(path, "utf8")) as { private_jwk: { x: string } };
    const other = await testSigner(join(root, "x"));
    stored.private_jwk.x = other.publicJwk.x;
    await writeFile(path, JSON.stringify(stored));
    await expect(loadCheckpointKey(path, { create: false })).rejects.toThrow(
      /public part does not match/,
    );
    await writeFile(path, "{not json");
    await expect(loadCheckpointKey(path, { create: false })).rejects.toThrow(/not valid JSON/);
  });

  it("reads public keys from a JWK, a JWKS, the API answer or the key file, recomputing ids", async () => {
    const jwk = signer.publicJwk;
    const forms = [
      JSON.stringify(jwk),
      JSON.stringify({ keys: [jwk] }),
      JSON.stringify({ key_id: signer.keyId, jwk }),
      await readFile(join(root, "checkpoint.json"), "utf8"),
      JSON.stringify({ ...jwk, kid: "someone-elses-id" }),
    ];
    for (const text of forms) {
      expect([...parseCheckpointPublicKeys(text, "test").keys()]).toEqual([signer.keyId]);
    }
    for (const bad of [
      "",
      "[]",
      '{"kty":"RSA","n":"x"}',
      '{"kty":"OKP","crv":"Ed25519","x":"short"}',
    ]) {
      expect(() => parseCheckpointPublicKeys(bad, "test")).toThrow();
    }
  });
});

describe("a torn segment line", () => {
  it("is cut on open, only in the last segment, and the log verifies after", async () => {
    await writeCheckpointedLog(dir, signer, {
      count: 3,
      segmentMaxBytes: 1 << 20,
      everyEntries: 100,
    });
    const path = join(dir, "audit-000001.jsonl");
    const size = (await stat(path)).size;
    await appendFile(path, '{"seq":4,"time"');
    const log = await openFileAuditLog({ dir, checkpoints: { signer, schedule: () => () => {} } });
    expect(log.repaired).toEqual({
      segment: "audit-000001.jsonl",
      droppedBytes: 15,
      checkpointDroppedBytes: 0,
    });
    await log.close();
    expect((await stat(path)).size).toBe(size);
    expect(await verifyAuditLog({ dir, keys: keysOf(signer) })).toMatchObject({ ok: true });
  });
});
