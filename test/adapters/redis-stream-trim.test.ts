import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { type FileAuditLog, openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { isWritError } from "../../src/domain/errors.js";
import type { RecordedEvent } from "../../src/domain/events.js";
import type { AuditLog } from "../../src/ports/audit-log.js";
import type { Logger } from "../../src/ports/logger.js";
import { silentLogger } from "../../src/ports/logger.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { appendSampleEvents, sampleEvent, sampleRequest } from "./store-contract.js";

// Trimming the event stream against real audit logs following it, on a real
// redis-server: the stream is the only copy of an event until every log has
// fsynced it.

const TIMEOUT_MS = 60_000;
/** No trim runs by itself during a test: each one is called. */
const NEVER_MS = 3_600_000;

let server: RedisServer;
let client: RedisStoreClient;
/** A plain client, to look at what the store wrote. */
const plainClient = (url: string) => createClient({ url }).on("error", () => {});
let raw: ReturnType<typeof plainClient>;
let dir: string;

beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis({ url: server.url, logger: silentLogger });
  raw = plainClient(server.url);
  await raw.connect();
  dir = await mkdtemp(join(tmpdir(), "writ-trim-"));
});

afterAll(async () => {
  await Promise.allSettled([client?.close(), raw?.close()]);
  await server?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const freshPrefix = () => `t${randomBytes(6).toString("hex")}`;

function trimmingStore(prefix: string, logger: Logger = silentLogger): RedisStore {
  return createRedisStore({
    client,
    prefix,
    streamTrim: { maxLen: 100, followerTimeoutMs: TIMEOUT_MS, intervalMs: NEVER_MS },
    followerReportIntervalMs: 10,
    logger,
  });
}

/** A real file log whose appends wait while `hold()` is in force: a follower that falls behind. */
function holdable(file: FileAuditLog) {
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  let held = 0;
  const append = async (events: readonly RecordedEvent[]) => {
    held++;
    await gate;
    held--;
    return file.append(events);
  };
  const log = new Proxy(file, {
    get(target, property) {
      if (property === "append") return append;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    log,
    hold() {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    release: () => open(),
    /** Whether an append is waiting at the gate. */
    waiting: () => held > 0,
  };
}

async function followerRecords(prefix: string): Promise<Record<string, string>> {
  const fields = await raw.hGetAll(`{${prefix}}:followers`);
  return Object.fromEntries(
    Object.entries(fields).map(([id, value]) => [id, value.split(" ")[0] as string]),
  );
}

async function streamIds(prefix: string): Promise<string[]> {
  const entries = (await raw.xRange(`{${prefix}}:events`, "-", "+")) ?? [];
  return entries.flatMap((e) => (e ? [e.id] : []));
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  return { lines, info: keep("info"), warn: keep("warn"), error: keep("error") };
}

describe("trimming the redis stream behind its audit log followers", () => {
  it("keeps every entry a live follower has not fsynced, and trims them once it has", async () => {
    const prefix = freshPrefix();
    const store = trimmingStore(prefix);
    const fastFile = await openFileAuditLog({ dir: join(dir, `${prefix}-fast`) });
    const slow = holdable(await openFileAuditLog({ dir: join(dir, `${prefix}-slow`) }));
    const follow = (file: FileAuditLog, id: string): AuditLog =>
      createStreamFollowingLog({
        store,
        file,
        logger: silentLogger,
        after: undefined,
        onDurable: (cursor) => store.recordLogCursor(id, cursor),
      });
    const fast = follow(fastFile, "fast");
    const behind = follow(slow.log, "slow");
    try {
      const first = await appendSampleEvents(store, 300);
      await Promise.all([fast.append(first), behind.append(first)]);
      const slowCursor = first.at(-1)?.id as string;
      await expect
        .poll(() => followerRecords(prefix))
        .toEqual({
          fast: slowCursor,
          slow: slowCursor,
        });

      // The slow log stops before its next fsync; the fast one goes on.
      slow.hold();
      const second = await appendSampleEvents(store, 2000);
      const last = second.at(-1)?.id as string;
      await fast.append(second);
      await expect.poll(() => slow.waiting()).toBe(true);
      await expect.poll(async () => (await followerRecords(prefix)).fast).toBe(last);
      expect((await followerRecords(prefix)).slow).toBe(slowCursor);

      const held = await store.trimStream();
      expect(held).toMatchObject({ liveFollowers: 2, slowestCursor: slowCursor });
      // Entries before it, which both logs hold, may go.
      expect(held.removed).toBeGreaterThan(0);
      const kept = await streamIds(prefix);
      // Every entry after the slow log's cursor is still there (and the cursor itself).
      expect(kept.slice(kept.indexOf(slowCursor))).toEqual([
        slowCursor,
        ...second.map((e) => e.id),
      ]);
      expect(held.length).toBe(kept.length);

      // Once it catches up, what it has written goes, down to about maxLen.
      slow.release();
      await behind.append(second);
      await expect.poll(async () => (await followerRecords(prefix)).slow).toBe(last);
      const caughtUp = await store.trimStream();
      expect(caughtUp.removed).toBeGreaterThan(0);
      expect(caughtUp.length).toBeGreaterThanOrEqual(100);
      expect(caughtUp.length).toBeLessThan(500);
      expect((await streamIds(prefix)).at(-1)).toBe(last);

      // Both logs hold every event, trimmed or not, and verify.
      await Promise.all([fast.close(), behind.close()]);
      for (const file of [fastFile, slow.log]) {
        expect(await verifyLogFile(file.path)).toMatchObject({ ok: true, entries: 2300 });
      }
    } finally {
      slow.release();
      await Promise.allSettled([fast.close(), behind.close()]);
      await store.close();
    }
  });

  it("drops followers not heard from within the timeout, and trims nothing without a live one", async () => {
    const prefix = freshPrefix();
    const store = trimmingStore(prefix);
    try {
      const events = await appendSampleEvents(store, 1000);
      // Redis's own clock times the records: a stale one is older by that clock.
      const [seconds] = await raw.time();
      const stale = String(Number(seconds) * 1000 - 2 * TIMEOUT_MS);
      // A replica gone for longer than the timeout, stuck at the first event.
      await raw.hSet(`{${prefix}}:followers`, "gone", `${events[0]?.id} ${stale}`);
      const none = await store.trimStream();
      expect(none).toMatchObject({ removed: 0, length: 1000, liveFollowers: 0 });
      expect(await raw.hExists(`{${prefix}}:followers`, "gone")).toBe(0);

      await raw.hSet(`{${prefix}}:followers`, "gone", `${events[0]?.id} ${stale}`);
      await store.recordLogCursor("here", events.at(-1)?.id);
      const trimmed = await store.trimStream();
      expect(trimmed.liveFollowers).toBe(1);
      expect(trimmed.removed).toBeGreaterThan(0);
      expect(trimmed.length).toBeLessThan(500);
      expect(await raw.hKeys(`{${prefix}}:followers`)).toEqual(["here"]);
    } finally {
      await store.close();
    }
  });

  it("reads skip what was trimmed", async () => {
    const prefix = freshPrefix();
    const store = trimmingStore(prefix);
    try {
      const request = sampleRequest();
      await store.create(request, [sampleEvent(request.id)]);
      let last: string | undefined;
      for (let i = 0; i < 10; i++) {
        const recorded = await store.append(
          Array.from({ length: 100 }, (_, j) =>
            sampleEvent(request.id, "token.replay_blocked", { n: i * 100 + j }),
          ),
        );
        last = recorded.at(-1)?.id;
      }
      await store.recordLogCursor("all-read", last);
      const { length } = await store.trimStream();
      expect(length).toBeLessThan(500);
      const ofRequest = await store.events({ requestId: request.id, limit: 2000 });
      expect(ofRequest.length).toBe(length);
      expect(ofRequest.at(-1)?.data.n).toBe(999);
    } finally {
      await store.close();
    }
  });

  it("tells a log that returns after the stream was trimmed past it that it lacks events", async () => {
    const prefix = freshPrefix();
    const store = trimmingStore(prefix);
    const logger = recordingLogger();
    const returning = trimmingStore(prefix, logger);
    try {
      const events = await appendSampleEvents(store, 1000);
      await store.recordLogCursor("a", events.at(-1)?.id);
      await store.trimStream();
      // A log that stopped at the 10th event comes back: its cursor was trimmed.
      const [first] = await streamIds(prefix);
      expect(await returning.recordLogCursor("b", events[9]?.id)).toEqual({
        follower: "b",
        after: events[9]?.id,
        firstAvailable: first,
      });
      expect(logger.lines.join("\n")).toMatch(
        /error audit log resumes after an event trimmed from the redis stream/,
      );
      // Only the first report of a log tells of the gap.
      expect(await returning.recordLogCursor("b", events[9]?.id)).toBeUndefined();
      // One that stopped at the newest event has lost nothing, and hears nothing.
      const quiet = recordingLogger();
      const current = trimmingStore(prefix, quiet);
      expect(await current.recordLogCursor("c", events.at(-1)?.id)).toBeUndefined();
      await current.close();
      expect(quiet.lines).toEqual([]);
    } finally {
      await Promise.all([store.close(), returning.close()]);
    }
  });

  it("writes the last cursor when the store closes and keeps the record for a restart", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({
      client,
      prefix,
      // Far apart: only the first report and the one at close can land.
      followerReportIntervalMs: NEVER_MS,
      logger: silentLogger,
    });
    const events = await appendSampleEvents(store, 3);
    await store.recordLogCursor("r1", events[0]?.id);
    await store.recordLogCursor("r1", events[2]?.id);
    expect(await followerRecords(prefix)).toEqual({ r1: events[0]?.id });
    await store.close();
    expect(await followerRecords(prefix)).toEqual({ r1: events[2]?.id });
  });

  it("trims nothing when a follower record cannot be read", async () => {
    const prefix = freshPrefix();
    const store = trimmingStore(prefix);
    try {
      const events = await appendSampleEvents(store, 1000);
      await store.recordLogCursor("ok", events.at(-1)?.id);
      await raw.hSet(`{${prefix}}:followers`, "odd", "not a record");
      const error = await store.trimStream().catch((e: unknown) => e);
      expect(isWritError(error) && error.code).toBe("store_unavailable");
      expect(await raw.xLen(`{${prefix}}:events`)).toBe(1000);
    } finally {
      await store.close();
    }
  });

  it("refuses bad follower ids, cursors and trim options as programming errors", async () => {
    const store = trimmingStore(freshPrefix());
    try {
      await expect(store.recordLogCursor("has space", undefined)).rejects.toThrow(TypeError);
      await expect(store.recordLogCursor("ok", "not-an-id")).rejects.toThrow(TypeError);
    } finally {
      await store.close();
    }
    for (const streamTrim of [
      { maxLen: 1.5, followerTimeoutMs: 1 },
      { maxLen: 10, followerTimeoutMs: 0 },
      { maxLen: 10, followerTimeoutMs: 10, intervalMs: -1 },
    ]) {
      expect(() => createRedisStore({ client, streamTrim, logger: silentLogger })).toThrow(
        TypeError,
      );
    }
    const untrimmed = createRedisStore({ client, prefix: freshPrefix(), logger: silentLogger });
    await expect(untrimmed.trimStream()).rejects.toThrow(TypeError);
    await untrimmed.close();
  });
});
