import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { type FileAuditLog, openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { openReplicaLog } from "../../src/audit/replica-log.js";
import {
  createStreamFollowingLog,
  type StreamFollowingLogOptions,
} from "../../src/audit/stream-follower.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import type { RecordedEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import { dirAndStoreForEachTest, replayBlockedEvent as event } from "./followed-store.js";

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("the audit log that follows the event stream", () => {
  const fresh = dirAndStoreForEachTest("writ-follow-");

  /** A follower of the test's store writing to `file`, from the stream's start unless `options` say. */
  const follow = (file: FileAuditLog, options: Partial<StreamFollowingLogOptions> = {}) =>
    createStreamFollowingLog({
      store: fresh.store,
      file,
      logger: silentLogger,
      after: undefined,
      ...options,
    });

  it("writes every event in stream order, and append resolves once they are on disk", async () => {
    const file = await openFileAuditLog({ dir: fresh.dir });
    const log = follow(file);
    const recorded = await Promise.all(
      Array.from({ length: 50 }, (_, n) => fresh.store.append([event(n), event(n + 100)])),
    );
    await Promise.all(recorded.map((events) => log.append(events)));
    const written = await lines(file.path);
    expect(written.map((e) => e.event_id)).toEqual(recorded.flat().map((e) => e.id));
    await log.close();
    expect(await verifyLogFile(file.path)).toMatchObject({ ok: true, entries: 100 });
  });

  it("gives two followers of one stream identical, complete files (replicas)", async () => {
    const a = await openReplicaLog(fresh.dir);
    const b = await openReplicaLog(fresh.dir);
    expect(b.dir).toBe(join(fresh.dir, "replicas", "2"));
    const logA = follow(a.log);
    const logB = follow(b.log);
    // Each "replica" commits its own events; each log still gets all of them.
    const fromA = await fresh.store.append([event(1), event(2)]);
    const fromB = await fresh.store.append([event(3)]);
    await logA.append(fromA);
    await logB.append(fromB);
    await logA.append(fromB);
    await logB.append(fromA);
    await logA.close();
    await logB.close();
    const [textA, textB] = await Promise.all([
      readFile(a.log.path, "utf8"),
      readFile(b.log.path, "utf8"),
    ]);
    expect(textA).toBe(textB);
    expect(await verifyLogFile(b.log.path)).toMatchObject({ ok: true, entries: 3 });
  });

  it("resumes after the last event it wrote and back-fills what happened while it was down", async () => {
    const first = await openFileAuditLog({ dir: fresh.dir });
    const log = follow(first);
    await log.append(await fresh.store.append([event(1), event(2)]));
    await log.close();
    const missed = await fresh.store.append([event(3), event(4)]);
    const reopened = await openFileAuditLog({ dir: fresh.dir });
    expect(reopened.tailEventIdAtOpen).toBe("2");
    const resumed = follow(reopened, { after: reopened.tailEventIdAtOpen });
    await resumed.append(missed);
    await resumed.close();
    const written = await lines(reopened.path);
    expect(written.map((e) => e.event_id)).toEqual(["1", "2", "3", "4"]);
    expect(await verifyLogFile(reopened.path)).toMatchObject({ ok: true, entries: 4 });
  });

  it("answers audit_unavailable when the events never reach the log in time", async () => {
    const file = await openFileAuditLog({ dir: fresh.dir });
    const log = follow(file, { appendTimeoutMs: 50 });
    const ghost = { ...event(9), id: "999" };
    await expect(log.append([ghost])).rejects.toMatchObject({ code: "audit_unavailable" });
    await log.close();
  });

  it("reports where it resumes before it reads, then how far each fsync reached", async () => {
    const earlier = await fresh.store.append([event(1), event(2)]);
    const file = await openFileAuditLog({ dir: fresh.dir });
    const reports: (string | undefined)[] = [];
    let registered = () => {};
    const registering = new Promise<void>((resolve) => {
      registered = resolve;
    });
    const log = follow(file, {
      onDurable: (cursor) => {
        reports.push(cursor);
        // The first report is awaited: nothing is read until it is made.
        return reports.length === 1 ? registering : undefined;
      },
    });
    await expect.poll(() => reports).toEqual([undefined]);
    expect(file.lastSeq()).toBe(0);
    registered();
    await log.append(earlier);
    expect(reports).toEqual([undefined, "2"]);
    const later = await fresh.store.append([event(3)]);
    await log.append(later);
    await log.close();
    expect(reports).toEqual([undefined, "2", "3", "3"]);
  });

  it("fails closed once its file can no longer be written, and says so once", async () => {
    const file = await openFileAuditLog({ dir: fresh.dir });
    const onFailed = vi.fn();
    const log = follow(file, { onFailed });
    await file.close();
    expect(log.writable()).toBe(false);
    const events = await fresh.store.append([event(1)]);
    await expect(log.append(events)).rejects.toMatchObject({ code: "audit_unavailable" });
    expect(onFailed).toHaveBeenCalledTimes(1);
    expect(onFailed.mock.calls[0]?.[0]).toMatchObject({ code: "audit_unavailable" });
    const later = await fresh.store.append([event(2)]);
    await expect(log.append(later)).rejects.toMatchObject({ code: "audit_unavailable" });
    await log.close();
    expect(onFailed).toHaveBeenCalledTimes(1);
    expect((await readdir(fresh.dir)).filter((f) => f.endsWith(".lock"))).toEqual([]);
  });

  /**
   * The real file log, each append held back after it was handed over until the
   * test releases it: a disk whose fsync takes as long as the test wants.
   */
  function slowDisk(file: FileAuditLog) {
    const handed: RecordedEvent[][] = [];
    const holds: (() => void)[] = [];
    const slow = {
      append(events: readonly RecordedEvent[]) {
        handed.push([...events]);
        const written = file.append(events);
        return new Promise<void>((resolve, reject) => {
          holds.push(() => written.then(resolve, reject));
        });
      },
      writable: () => file.writable(),
      close: () => file.close(),
    } as unknown as FileAuditLog;
    return { slow, handed, release: (n: number) => holds[n]?.() };
  }

  it("reads the next batch while the last one syncs, and answers each caller only once its own batch is durable", async () => {
    const file = await openFileAuditLog({ dir: fresh.dir });
    const disk = slowDisk(file);
    const log = follow(disk.slow);
    const first = await fresh.store.append([event(1), event(2)]);
    let firstDone = false;
    const firstAppend = log.append(first).then(() => {
      firstDone = true;
    });
    await vi.waitFor(() => expect(disk.handed).toHaveLength(1));
    const second = await fresh.store.append([event(3)]);
    let secondDone = false;
    const secondAppend = log.append(second).then(() => {
      secondDone = true;
    });
    // The second batch reaches the file while the first is still syncing.
    await vi.waitFor(() => expect(disk.handed).toHaveLength(2));
    expect([firstDone, secondDone]).toEqual([false, false]);
    disk.release(0);
    await firstAppend;
    expect(secondDone).toBe(false);
    disk.release(1);
    await secondAppend;
    await log.close();
    expect((await lines(file.path)).map((e) => e.event_id)).toEqual(
      [...first, ...second].map((e) => e.id),
    );
  });

  it("keeps at most four batches waiting on the disk", async () => {
    const file = await openFileAuditLog({ dir: fresh.dir });
    const disk = slowDisk(file);
    const log = follow(disk.slow, { batchSize: 1 });
    const recorded = await fresh.store.append([1, 2, 3, 4, 5, 6].map(event));
    const appended = log.append(recorded);
    await vi.waitFor(() => expect(disk.handed).toHaveLength(4));
    // Nothing more is read until the oldest batch is durable.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(disk.handed).toHaveLength(4);
    disk.release(0);
    await vi.waitFor(() => expect(disk.handed).toHaveLength(5));
    for (let n = 1; n < 6; n++) {
      await vi.waitFor(() => expect(disk.handed.length).toBeGreaterThan(n));
      disk.release(n);
    }
    await appended;
    await log.close();
    expect(await verifyLogFile(file.path)).toMatchObject({ ok: true, entries: 6 });
  });
});
