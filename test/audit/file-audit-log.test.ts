import { constants, existsSync } from "node:fs";
import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { GENESIS_HASH, type LogEntry } from "../../src/audit/log-entry.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { WritError } from "../../src/domain/errors.js";
import { sampleEvent, sampleEvents } from "./sample-events.js";

let root: string;
let dir: string;
let path: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-audit-"));
  dir = join(root, "log");
  path = join(dir, "audit-000001.jsonl");
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function readEntries(file = path): Promise<LogEntry[]> {
  const text = await readFile(file, "utf8");
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as LogEntry);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<WritError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(WritError);
  expect((error as WritError).code).toBe(code);
  return error as WritError;
}

describe("openFileAuditLog", () => {
  it("creates a private directory and file and starts the chain at genesis", async () => {
    const log = await openFileAuditLog({ dir });
    expect(log.path).toBe(path);
    expect(log.repaired).toBeUndefined();
    expect(log.lastSeq()).toBe(0);
    expect(log.lastHash()).toBe(GENESIS_HASH);
    await log.append([sampleEvent(1)]);
    await log.close();

    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const [first] = await readEntries();
    expect(first).toMatchObject({
      seq: 1,
      time: "2023-11-14T22:13:21.000Z",
      type: "credential.issued",
      request_id: "req_sample1",
      actor: { kind: "agent", id: "agent-billing-export" },
      event_id: "1700000000001-0",
      prev: GENESIS_HASH,
    });
    expect(log.lastHash()).toBe(first?.hash);
  });

  it.runIf(process.platform === "linux" && constants.O_DSYNC !== undefined)(
    "writes segments, the first and every rotated one, with O_DSYNC (each write durable on return)",
    async () => {
      /** The open flags of this process's descriptors on `path`, from /proc. */
      const flagsOf = async (path: string) => {
        const found: number[] = [];
        for (const fd of await readdir("/proc/self/fd")) {
          const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
          if (target !== path) continue;
          const info = await readFile(`/proc/self/fdinfo/${fd}`, "utf8").catch(() => "");
          const octal = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
          if (octal !== undefined) found.push(Number.parseInt(octal, 8));
        }
        return found;
      };
      const log = await openFileAuditLog({ dir, segmentMaxBytes: 1024 });
      const first = log.path;
      const dsync = (flags: number[]) =>
        flags.length > 0 && flags.every((f) => (f & constants.O_DSYNC) === constants.O_DSYNC);
      expect(dsync(await flagsOf(first))).toBe(true);
      // The first batch fills the first segment; the next starts another.
      await log.append(sampleEvents(1, 20));
      await log.append(sampleEvents(21, 1));
      expect(log.path).not.toBe(first);
      expect(dsync(await flagsOf(log.path))).toBe(true);
      await log.close();
    },
  );

  it("continues the chain across a reopen", async () => {
    const first = await openFileAuditLog({ dir });
    await first.append(sampleEvents(1, 3));
    const hashAfterThree = first.lastHash();
    await first.close();

    const second = await openFileAuditLog({ dir });
    expect(second.repaired).toBeUndefined();
    expect(second.lastSeq()).toBe(3);
    expect(second.lastHash()).toBe(hashAfterThree);
    await second.append(sampleEvents(4, 2));
    await second.close();

    const entries = await readEntries();
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(entries[3]?.prev).toBe(hashAfterThree);
    expect(await verifyLogFile(path)).toEqual({
      ok: true,
      entries: 5,
      lastSeq: 5,
      lastHash: second.lastHash(),
    });
  });

  it("writes concurrent appends as one gap-free chain in call order", async () => {
    const log = await openFileAuditLog({ dir });
    const resolved: number[] = [];
    const calls = Array.from({ length: 500 }, (_, i) => {
      // Every tenth call carries two events, to mix call sizes within a batch.
      const events =
        i % 10 === 0 ? [sampleEvent(i * 2), sampleEvent(i * 2 + 1)] : [sampleEvent(i * 2)];
      return log.append(events).then(() => resolved.push(i));
    });
    await Promise.all(calls);
    await log.close();

    const expectedIds = Array.from({ length: 500 }, (_, i) =>
      i % 10 === 0 ? [sampleEvent(i * 2).id, sampleEvent(i * 2 + 1).id] : [sampleEvent(i * 2).id],
    ).flat();
    const entries = await readEntries();
    expect(entries.map((e) => e.event_id)).toEqual(expectedIds);
    expect(entries.map((e) => e.seq)).toEqual(expectedIds.map((_, i) => i + 1));
    expect(resolved).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(log.lastSeq()).toBe(550);
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 550 });
  });

  it("reports only fsynced entries as last seq and hash", async () => {
    const log = await openFileAuditLog({ dir });
    const pending = log.append([sampleEvent(1)]);
    expect(log.lastSeq()).toBe(0);
    expect(log.lastHash()).toBe(GENESIS_HASH);
    await pending;
    expect(log.lastSeq()).toBe(1);
    await log.close();
  });

  it("truncates a torn final line on open and reports it", async () => {
    const first = await openFileAuditLog({ dir });
    await first.append(sampleEvents(1, 3));
    const hashAfterThree = first.lastHash();
    await first.close();
    const torn = '{"seq":4,"time":"2023-11-14T22:13:2';
    await appendFile(path, torn);

    const second = await openFileAuditLog({ dir });
    expect(second.repaired).toEqual({
      segment: "audit-000001.jsonl",
      droppedBytes: Buffer.byteLength(torn),
      checkpointDroppedBytes: 0,
    });
    expect(second.lastSeq()).toBe(3);
    expect(second.lastHash()).toBe(hashAfterThree);
    await second.append([sampleEvent(4)]);
    await second.close();

    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 4 });
  });

  it("reports a repair at every open until it is recorded", async () => {
    const first = await openFileAuditLog({ dir });
    await first.append(sampleEvents(1, 3));
    await first.close();
    const torn = '{"seq":4,"time":"2023-11-14T22:13:2';
    await appendFile(path, torn);
    const expected = {
      segment: "audit-000001.jsonl",
      droppedBytes: Buffer.byteLength(torn),
      checkpointDroppedBytes: 0,
    };

    // The cut is made, but the process stops before the repair is recorded (it
    // crashes, or the event stream refuses the event and the start fails).
    const cut = await openFileAuditLog({ dir });
    expect(cut.repaired).toEqual(expected);
    await cut.close();
    expect(await readFile(path, "utf8")).not.toContain(torn);

    const again = await openFileAuditLog({ dir });
    expect(again.repaired).toEqual(expected);
    await again.append([sampleEvent(4)]);
    await again.repairRecorded();
    await again.close();

    const recorded = await openFileAuditLog({ dir });
    expect(recorded.repaired).toBeUndefined();
    await recorded.close();
  });

  it("drops a final line that ends with a newline but is not JSON", async () => {
    const first = await openFileAuditLog({ dir });
    await first.append(sampleEvents(1, 2));
    await first.close();
    const garbage = `${"\0".repeat(40)}\n`;
    await appendFile(path, garbage);

    const second = await openFileAuditLog({ dir });
    expect(second.repaired).toMatchObject({ droppedBytes: garbage.length });
    expect(second.lastSeq()).toBe(2);
    await second.append([sampleEvent(3)]);
    await second.close();
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 3 });
  });

  it("starts over at genesis when the only line is torn", async () => {
    await (await openFileAuditLog({ dir })).close();
    await writeFile(path, '{"seq":1,"ti');

    const log = await openFileAuditLog({ dir });
    expect(log.repaired).toMatchObject({ droppedBytes: 12 });
    expect(log.lastSeq()).toBe(0);
    await log.append([sampleEvent(1)]);
    await log.close();
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 1 });
  });

  it("refuses to open a log whose whole last entry is invalid, and leaves it as is", async () => {
    const first = await openFileAuditLog({ dir });
    await first.append(sampleEvents(1, 2));
    await first.close();
    const original = await readFile(path, "utf8");
    const tampered = original.replace('"grt_2"', '"grt_9"');
    await writeFile(path, tampered);

    const error = await expectCode(openFileAuditLog({ dir }), "audit_unavailable");
    expect(error.message).toContain("hash mismatch");
    expect(await readFile(path, "utf8")).toBe(tampered);
  });

  it("rejects an unrepresentable event without using up a seq", async () => {
    const log = await openFileAuditLog({ dir });
    await log.append([sampleEvent(1)]);
    await expect(
      log.append([sampleEvent(2), sampleEvent(3, { ratio: Number.NaN })]),
    ).rejects.toThrow(TypeError);
    await log.append([sampleEvent(4)]);
    await log.close();

    expect((await readEntries()).map((e) => [e.seq, e.event_id])).toEqual([
      [1, sampleEvent(1).id],
      [2, sampleEvent(4).id],
    ]);
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 2 });
  });

  it("resolves an empty append without writing", async () => {
    const log = await openFileAuditLog({ dir });
    await log.append([]);
    await log.close();
    expect(await readFile(path, "utf8")).toBe("");
  });

  it("writes appends queued before close, then refuses new ones", async () => {
    const log = await openFileAuditLog({ dir });
    const queued = [log.append([sampleEvent(1)]), log.append([sampleEvent(2)])];
    const closed = log.close();
    await expectCode(log.append([sampleEvent(3)]), "audit_unavailable");
    await Promise.all(queued);
    await closed;
    await log.close();
    expect(await verifyLogFile(path)).toMatchObject({ ok: true, entries: 2 });
  });

  // /dev/full accepts the open and fails every write with ENOSPC: a real write error.
  it.skipIf(!existsSync("/dev/full"))(
    "fails closed after a failed write, without event data in the error",
    async () => {
      await mkdir(dir, { recursive: true });
      await symlink("/dev/full", path);

      const log = await openFileAuditLog({ dir });
      const secret = "grant-data-that-must-not-leak";
      const batch = [
        log.append([sampleEvent(1, { marker: secret })]),
        log.append([sampleEvent(2, { marker: secret })]),
      ];
      for (const call of batch) {
        const error = await expectCode(call, "audit_unavailable");
        expect(error.message).toMatch(/ENOSPC/);
        expect(error.message).not.toContain(secret);
        expect(error.message).not.toContain("req_sample");
      }
      await expectCode(log.append([sampleEvent(3)]), "audit_unavailable");
      expect(log.lastSeq()).toBe(0);
      await log.close();
    },
  );
});

describe("the writer lock", () => {
  it("refuses a second writer on the same log while the first is open, and frees it on close", async () => {
    const dir = await mkdtemp(join(tmpdir(), "writ-lock-"));
    try {
      const first = await openFileAuditLog({ dir });
      await expect(openFileAuditLog({ dir })).rejects.toMatchObject({ code: "audit_unavailable" });
      await first.close();
      const second = await openFileAuditLog({ dir });
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("takes over a lock left by a process that died", async () => {
    const dir = await mkdtemp(join(tmpdir(), "writ-lock-"));
    try {
      // pid 2^22 + 1 is above Linux's pid_max, so no process holds it.
      await writeFile(join(dir, "writer.lock"), "4194305\n");
      const log = await openFileAuditLog({ dir });
      await log.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
