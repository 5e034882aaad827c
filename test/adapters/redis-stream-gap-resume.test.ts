import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
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
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import type { AuditLog } from "../../src/ports/audit-log.js";
import { systemClock } from "../../src/ports/clock.js";
import { silentLogger } from "../../src/ports/logger.js";
import { recordAuditGap } from "../../src/service/record-audit-gap.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";
import { appendSampleEvents } from "./store-contract.js";

// A replica that keeps running while Redis cannot hear from it (a network
// partition, a paused VM) for longer than the follower timeout loses its
// follower record, and the stream may be trimmed past its cursor. When it is
// heard from again its log must say so (`audit.gap`), never resume silently.

const FOLLOWER_TIMEOUT_MS = 500;
/** No trim runs by itself during a test: each one is called. */
const NEVER_MS = 3_600_000;

let server: RedisServer;
let dir: string;
const clients: RedisStoreClient[] = [];
const stores: RedisStore[] = [];
const logs: AuditLog[] = [];
let proxy: TcpProxy | undefined;

beforeAll(async () => {
  server = await startRedisServer();
  dir = await mkdtemp(join(tmpdir(), "writ-gap-"));
});

afterAll(async () => {
  await Promise.allSettled(logs.map((log) => log.close()));
  await Promise.allSettled(stores.map((store) => store.close()));
  await Promise.allSettled(clients.map((client) => client.close()));
  await proxy?.close();
  await server?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function storeAt(url: string, prefix: string): Promise<RedisStore> {
  const client = await connectRedis({ url, logger: silentLogger, maxReconnectDelayMs: 100 });
  clients.push(client);
  const store = createRedisStore({
    client,
    prefix,
    streamTrim: { maxLen: 100, followerTimeoutMs: FOLLOWER_TIMEOUT_MS, intervalMs: NEVER_MS },
    followerReportIntervalMs: 20,
    operationTimeoutMs: 1_000,
    logger: silentLogger,
  });
  stores.push(store);
  return store;
}

async function follow(store: RedisStore, id: string, idleWaitMs = 5_000) {
  const file = await openFileAuditLog({
    dir: join(dir, `${id}-${randomBytes(4).toString("hex")}`),
  });
  const log = createStreamFollowingLog({
    store,
    file,
    logger: silentLogger,
    after: undefined,
    idleWaitMs,
    onDurable: (cursor) => store.recordLogCursor(id, cursor),
    onGap: (gap) => recordAuditGap({ store, clock: systemClock }, gap),
  });
  logs.push(log);
  return { log, path: file.path };
}

async function entriesOf(path: string) {
  const text = await readFile(path, "utf8");
  return text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; data: Record<string, unknown> });
}

describe("a running replica that Redis did not hear from for longer than the follower timeout", () => {
  it("cut off by the network: records audit.gap once it is heard from again", async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    proxy = await startTcpProxy(server.port);
    const storeA = await storeAt(proxy.url, prefix);
    const storeB = await storeAt(server.url, prefix);
    const a = await follow(storeA, "replica-a");
    const b = await follow(storeB, "replica-b");
    const before = await appendSampleEvents(storeB, 200);
    await Promise.all([a.log.append(before), b.log.append(before)]);
    const lastBefore = before.at(-1)?.id as string;
    // Redis knows where A stands before it is cut off.
    const raw = createClient({ url: server.url }).on("error", () => {});
    await raw.connect();
    try {
      await waitFor("A's cursor in Redis", async () =>
        ((await raw.hGet(`{${prefix}}:followers`, "replica-a")) ?? "").startsWith(`${lastBefore} `),
      );
    } finally {
      await raw.close();
    }

    // A keeps running, cut off from Redis; B serves on and trims.
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, FOLLOWER_TIMEOUT_MS * 2));
    const during = await appendSampleEvents(storeB, 2_000);
    await b.log.append(during);
    expect((await storeB.trimStream()).removed).toBeGreaterThan(0);

    proxy.heal();
    const after = await appendSampleEvents(storeB, 1);
    await a.log.append(after);

    await waitFor("audit.gap in the log", async () =>
      (await entriesOf(a.path)).some((e) => e.type === "audit.gap"),
    );
    const entries = await entriesOf(a.path);
    const gaps = entries.filter((e) => e.type === "audit.gap");
    // It names the hole: where A stood as far as Redis knew, and the first event the stream still held.
    expect(gaps).toHaveLength(1);
    expect(gaps[0]?.data).toMatchObject({ follower: "replica-a" });
    // The last cursor A knows Redis took: lastBefore, unless the reply to that
    // report was lost in the cut (Redis took it, A cannot tell), when it is an
    // earlier report's cursor, or "0-0" (from the start) if A heard of none.
    // Never past where A stood: the gap named is at least the real one.
    expect(["0-0", ...before.map((e) => e.id)]).toContain(gaps[0]?.data.after);
    const firstAvailable = gaps[0]?.data.first_available as string;
    expect(during.findIndex((e) => e.id === firstAvailable)).toBeGreaterThan(0);
    expect(await verifyLogFile(a.path)).toMatchObject({ ok: true });
  }, 60_000);

  it("paused, with no error of its own: the next report finds its record gone and answers the gap", async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const store = await storeAt(server.url, prefix);
    const read = await appendSampleEvents(store, 20);
    const cursor = read.at(-1)?.id as string;
    expect(await store.recordLogCursor("replica-p", cursor)).toBeUndefined();
    // While this process was paused: more events, then a trim that dropped its
    // record (not heard from within the timeout) and removed events it never read.
    const unread = await appendSampleEvents(store, 10);
    const raw = createClient({ url: server.url }).on("error", () => {});
    await raw.connect();
    try {
      const followers = (await raw.keys(`{${prefix}}*`)).find((key) => key.endsWith(":followers"));
      const stream =
        (await raw.type(`{${prefix}}:events`)) === "stream" ? `{${prefix}}:events` : "";
      if (followers === undefined || stream === "") throw new Error("unexpected key layout");
      // In one step, as a trim drops a record and its events: between two
      // commands the store's heartbeat (every 20 ms) could recreate the record
      // while the stream still held everything, and there would be no gap.
      await raw
        .multi()
        .hDel(followers, "replica-p")
        .xTrim(stream, "MINID", unread[5]?.id as string)
        .exec();
    } finally {
      await raw.close();
    }
    // The heartbeat (every 20 ms here) finds the record gone; the next report answers the gap.
    let gap: unknown;
    await waitFor("the gap", async () => {
      gap = await store.recordLogCursor("replica-p", cursor);
      return gap !== undefined;
    });
    expect(gap).toEqual({ follower: "replica-p", after: cursor, firstAvailable: unread[5]?.id });
    // Answered once.
    expect(await store.recordLogCursor("replica-p", cursor)).toBeUndefined();
  });
});
