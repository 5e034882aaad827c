import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStore,
  type RedisStoreClient,
  type RedisStoreOptions,
} from "../../src/adapters/redis-store.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { isWritError } from "../../src/domain/errors.js";
import type { RecordedEvent } from "../../src/domain/events.js";
import type { AccessRequest } from "../../src/domain/request.js";
import { startNotificationWorker } from "../../src/notify/worker.js";
import type { Logger } from "../../src/ports/logger.js";
import { silentLogger } from "../../src/ports/logger.js";
import {
  APPROVAL_FLOW_EVENTS,
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  keyOf,
} from "../support/api.js";
import { startTestWrit } from "../support/harness.js";
import {
  type RedisClusterServers,
  type RedisSentinelServer,
  type RedisServer,
  startRedisCluster,
  startRedisSentinel,
  startRedisServer,
} from "../support/redis.js";
import { describeStoreContract, sampleEvent, sampleRequest } from "./store-contract.js";

/** A prefix no other test uses, so that tests sharing a server never see each other's keys. */
const freshPrefix = () => `t${randomBytes(6).toString("hex")}`;

/** A logger that keeps every line, to check what reaches logs. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  return { lines, info: keep("info"), warn: keep("warn"), error: keep("error") };
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

/** Resolves once `ready()` holds, or fails after `ms`: the store reconnects on its own. */
async function untilReady(store: RedisStore, client: RedisStoreClient, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await store.ready())) {
    if (Date.now() > deadline) throw new Error("store did not become ready");
    // Wake on the client's next reconnection, or re-check within a bounded
    // interval (a frozen server keeps its connection, so it sends no event).
    const wake = new AbortController();
    await Promise.race([
      once(client as unknown as NodeJS.EventEmitter, "ready", { signal: wake.signal }).catch(
        () => {},
      ),
      new Promise((resolve) => setTimeout(resolve, 100)),
    ]);
    wake.abort();
  }
}

let server: RedisServer;
let client: RedisStoreClient;
let cluster: RedisClusterServers;
let clusterClient: RedisStoreClient;
let sentinel: RedisSentinelServer;
let sentinelClient: RedisStoreClient;
/** A plain client, to look at what the store wrote. */
const plainClient = (url: string) => createClient({ url }).on("error", () => {});
let raw: ReturnType<typeof plainClient>;

beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster(3)]);
  sentinel = await startRedisSentinel(server);
  [client, clusterClient, sentinelClient] = await Promise.all([
    connectRedis({ url: server.url, logger: silentLogger }),
    connectRedis({ clusterNodes: cluster.urls, logger: silentLogger }),
    connectRedis({
      sentinel: { name: sentinel.name, nodes: [sentinel.url] },
      logger: silentLogger,
    }),
  ]);
  raw = plainClient(server.url);
  await raw.connect();
});

afterAll(async () => {
  await Promise.allSettled([
    client?.close(),
    clusterClient?.close(),
    sentinelClient?.close(),
    raw?.close(),
  ]);
  await Promise.allSettled([server?.dispose(), cluster?.dispose(), sentinel?.dispose()]);
});

const storeOn = (c: () => RedisStoreClient, extra: Partial<RedisStoreOptions> = {}) =>
  createRedisStore({ client: c(), prefix: freshPrefix(), logger: silentLogger, ...extra });

describeStoreContract("redis (standalone)", async () => storeOn(() => client));
describeStoreContract("redis (cluster of 3 masters)", async () => storeOn(() => clusterClient));
describeStoreContract("redis (through Sentinel)", async () => storeOn(() => sentinelClient));

describe("redis store across processes", () => {
  it("wakes a long-poll and a follower on another connection as soon as the other commits", async () => {
    const prefix = freshPrefix();
    const other = await connectRedis({ url: server.url, logger: silentLogger });
    const a = createRedisStore({ client, prefix, logger: silentLogger });
    const b = createRedisStore({ client: other, prefix, logger: silentLogger });
    try {
      const request = sampleRequest();
      const created = await a.create(request, [sampleEvent(request.id)]);
      if (!created.ok) throw new Error("create failed");
      const newest = created.events.at(-1)?.id as string;

      // B's stream reader is running: the waits below check the state once, then
      // only the reader's wake-up can end them before their timeout.
      await b.waitForEvents(undefined, 10_000);
      let changed = 0;
      let appended = 0;
      const started = performance.now();
      const change = b.waitForChange(request.id, 1, 30_000).then(() => {
        changed = performance.now() - started;
      });
      const follow = b.waitForEvents(newest, 30_000).then(() => {
        appended = performance.now() - started;
      });
      // Both waits are registered and checked before the commit (this read is
      // answered after their checks, on the same connection): nothing has changed yet.
      expect(await b.get(request.id)).toEqual(request);
      const committed = await a.commit({ ...request, status: "approved", version: 2 }, 1, [
        sampleEvent(request.id, "request.approved"),
      ]);
      expect(committed.ok).toBe(true);
      await Promise.all([change, follow]);
      // Woken by the stream reader, not by the 30 s timeout.
      expect(changed).toBeLessThan(2_000);
      expect(appended).toBeLessThan(2_000);
      expect((await b.get(request.id))?.status).toBe("approved");
    } finally {
      await Promise.all([a.close(), b.close()]);
      await other.close();
    }
  });

  it("lets exactly one of 200 concurrent commits through two connections win", async () => {
    const prefix = freshPrefix();
    const other = await connectRedis({ url: server.url, logger: silentLogger });
    const stores = [
      createRedisStore({ client, prefix, logger: silentLogger }),
      createRedisStore({ client: other, prefix, logger: silentLogger }),
    ];
    try {
      const request = sampleRequest();
      await stores[0]?.create(request, [sampleEvent(request.id)]);
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, n) =>
          (stores[n % 2] as RedisStore).commit(
            { ...request, status: "approved", version: 2, context: { n } },
            1,
            [sampleEvent(request.id, "request.approved", { n })],
          ),
        ),
      );
      const winners = results.flatMap((r, n) => (r.ok ? [n] : []));
      expect(winners).toHaveLength(1);
      const stored = await stores[1]?.get(request.id);
      expect(stored?.context).toEqual({ n: winners[0] });
      const approved = await stores[1]?.events({ type: "request.approved", limit: 1000 });
      expect(approved?.map((e) => e.data.n)).toEqual(winners);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await other.close();
    }
  });
});

describe("redis store's blocking read of the stream (nextEvents)", () => {
  it("answers a follower caught up with its change feed from the feed's own reads, with no read of its own", async () => {
    const prefix = freshPrefix();
    const other = await connectRedis({ url: server.url, logger: silentLogger });
    // The follower's connection, counting the stream reads the store makes on it.
    let xranges = 0;
    const counting = new Proxy(client, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === "xRange") {
          return (...args: Parameters<RedisStoreClient["xRange"]>) => {
            xranges++;
            return target.xRange(...args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const follower = createRedisStore({ client: counting, prefix, logger: silentLogger });
    const writer = createRedisStore({ client: other, prefix, logger: silentLogger });
    try {
      const request = sampleRequest();
      const created = await writer.create(request, [sampleEvent(request.id)]);
      if (!created.ok) throw new Error("create failed");
      // The first read starts the feed.
      let cursor = (
        await follower.nextEvents(undefined, { limit: 1000, timeoutMs: 10_000, internal: true })
      ).at(-1)?.id;
      expect(cursor).toBe(created.events.at(-1)?.id);
      let before = xranges;
      for (let round = 0; round < 20; round++) {
        // The first round may find the feed still fixing where it starts; from the next on,
        // the follower is caught up with it.
        if (round === 1) before = xranges;
        const reading = follower.nextEvents(cursor, {
          limit: 1000,
          timeoutMs: 30_000,
          internal: true,
        });
        const recorded = await writer.append([
          sampleEvent(request.id, "token.replay_blocked", { round }),
          sampleEvent(request.id, "token.used", { round }),
        ]);
        expect(await reading).toEqual(recorded);
        cursor = recorded.at(-1)?.id;
      }
      expect(xranges).toBe(before);
    } finally {
      await Promise.all([follower.close(), writer.close()]);
      await other.close();
    }
  });

  it("fails a caught-up follower with store_unavailable on an entry writ did not write, and bounds API readers", async () => {
    const prefix = freshPrefix();
    const store = storeOn(() => client, { prefix, maxStreamWaiters: 1 });
    const raw = createClient({ url: server.url });
    await raw.connect();
    try {
      const request = sampleRequest();
      const created = await store.create(request, [sampleEvent(request.id)]);
      if (!created.ok) throw new Error("create failed");
      const cursor = created.events.at(-1)?.id;
      await store.nextEvents(undefined, { limit: 1000, timeoutMs: 10_000 });
      const reading = rejection(store.nextEvents(cursor, { limit: 10, timeoutMs: 30_000 }));
      // The pool of API readers is full; the process's own are still taken.
      const refused = await rejection(store.nextEvents(cursor, { limit: 10, timeoutMs: 30_000 }));
      expect(isWritError(refused) && refused.code).toBe("store_unavailable");
      const internal = new AbortController();
      const own = store.nextEvents(cursor, {
        limit: 10,
        timeoutMs: 30_000,
        internal: true,
        signal: internal.signal,
      });
      internal.abort();
      expect(await own).toEqual([]);
      await raw.xAdd(`{${prefix}}:events`, "*", { type: "made.up", request_id: "", time: "1" });
      const error = await reading;
      expect(isWritError(error) && error.code).toBe("store_unavailable");
      await expect(
        rejection(store.nextEvents("not-an-id", { limit: 10, timeoutMs: 10 })),
      ).resolves.toBeInstanceOf(TypeError);
    } finally {
      await store.close();
      await raw.close();
    }
  });
});

describe("redis store waiters", () => {
  it("bounds concurrent waits, frees a slot on abort, and resolves the rest on close", async () => {
    const store = storeOn(() => client, { maxWaiters: 2, maxStreamWaiters: 1 });
    const request = sampleRequest();
    await store.create(request, [sampleEvent(request.id)]);
    const newest = (await store.lastEventId()) as string;
    const controller = new AbortController();
    const first = store.waitForChange(request.id, 1, 30_000, controller.signal);
    const second = store.waitForChange(request.id, 1, 30_000);
    const follower = store.waitForEvents(newest, 30_000);
    const refused = [
      await rejection(store.waitForChange(request.id, 1, 30_000)),
      await rejection(store.waitForEvents(newest, 30_000)),
    ];
    for (const error of refused) expect(isWritError(error) && error.code).toBe("store_unavailable");
    controller.abort();
    await first;
    const third = store.waitForChange(request.id, 1, 30_000);
    await expect(rejection(store.waitForEvents("not-an-id", 10))).resolves.toBeInstanceOf(
      TypeError,
    );
    await store.close();
    await Promise.all([second, third, follower]);
  });
});

describe("redis store waiters of the process's own followers", () => {
  /** A stream id far ahead of any entry: API waits past it never end by themselves. */
  const FAR_AHEAD = "99999999999999-0";

  it("never refuses them: the audit log and a notification worker keep up while API readers fill the pool", async () => {
    const store = storeOn(() => client, { maxStreamWaiters: 2 });
    const dir = await mkdtemp(join(tmpdir(), "writ-waiters-"));
    const api = new AbortController();
    /** The store as the followers see it, counting their waits and the refused ones. */
    let pending = 0;
    const refusals: string[] = [];
    const watched: RedisStore = {
      ...store,
      waitForEvents(after, timeoutMs, signal, options) {
        pending++;
        return store
          .waitForEvents(after, timeoutMs, signal, options)
          .catch((error: unknown) => {
            refusals.push((error as Error).message);
            throw error;
          })
          .finally(() => {
            pending--;
          });
      },
      nextEvents(after, options) {
        pending++;
        return store
          .nextEvents(after, options)
          .catch((error: unknown) => {
            refusals.push((error as Error).message);
            throw error;
          })
          .finally(() => {
            pending--;
          });
      },
    };
    const file = await openFileAuditLog({ dir });
    const log = createStreamFollowingLog({
      store: watched,
      file,
      logger: silentLogger,
      after: undefined,
    });
    const delivered: string[] = [];
    const worker = startNotificationWorker({
      channel: {
        name: "test",
        wants: () => true,
        deliver: async (event) => {
          delivered.push(event.id);
        },
      },
      store: watched,
      state: createMemoryNotificationState({ clock: { now: () => Date.now() } }),
      clock: { now: () => Date.now() },
      logger: silentLogger,
      holder: "here",
      retry: { initialMs: 1, maxMs: 1 },
      // The sample events are dated long ago: none is too old to hand on.
      firstStartWindowMs: Number.MAX_SAFE_INTEGER,
    });
    try {
      // API readers take every slot of the pool; one more is refused.
      const readers = [
        store.waitForEvents(FAR_AHEAD, 30_000, api.signal),
        store.waitForEvents(FAR_AHEAD, 30_000, api.signal),
      ];
      const refused = await rejection(store.waitForEvents(FAR_AHEAD, 30_000));
      expect(isWritError(refused) && refused.code).toBe("store_unavailable");

      // Internal waits are still taken, and end as any wait does.
      const own = new AbortController();
      const internal = store.waitForEvents(FAR_AHEAD, 30_000, own.signal, { internal: true });
      own.abort();
      await internal;

      const request = sampleRequest();
      const created = await store.create(request, [sampleEvent(request.id)]);
      if (!created.ok) throw new Error("the request was not created");
      for (let round = 0; round < 3; round++) {
        const recorded: readonly RecordedEvent[] =
          round === 0
            ? created.events
            : await store.append([sampleEvent(request.id, "token.replay_blocked", { round })]);
        // The audit log writes it; the worker hands it on; both then wait again.
        await log.append(recorded);
        await expect.poll(() => delivered).toContain(recorded.at(-1)?.id);
        await expect.poll(() => pending).toBe(2);
      }
      expect(refusals).toEqual([]);
      expect(delivered).toHaveLength(3);
      api.abort();
      await Promise.all(readers);
    } finally {
      api.abort();
      await worker.stop();
      await log.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("redis store atomicity", () => {
  it("writes nothing for a stale commit: no entry, no index change", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client, prefix, logger: silentLogger });
    try {
      const request = sampleRequest({ expiresAt: 1 });
      await store.create(request, [sampleEvent(request.id)]);
      const v2 = { ...request, status: "approved" as const, version: 2 };
      expect((await store.commit(v2, 1, [sampleEvent(request.id, "request.approved")])).ok).toBe(
        true,
      );
      const streamLength = await raw.xLen(`{${prefix}}:events`);
      const stale = { ...request, status: "denied" as const, version: 2, expiresAt: 5 };
      expect(await store.commit(stale, 1, [sampleEvent(request.id, "request.denied")])).toEqual({
        ok: false,
        reason: "conflict",
      });
      expect(await raw.xLen(`{${prefix}}:events`)).toBe(streamLength);
      expect(await store.get(request.id)).toEqual(v2);
      expect((await store.list({ status: "denied", limit: 10 })).items).toEqual([]);
      expect((await store.list({ status: "approved", limit: 10 })).items).toEqual([v2]);
      expect(await store.due(4, 10)).toEqual([request.id]);
    } finally {
      await store.close();
    }
  });

  it("refuses a change before its first write when a key it writes holds the wrong type", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client, prefix, logger: silentLogger });
    // The event-id list is the last key a commit writes; the new status's list and the
    // stored status's are named by the script itself, from their prefix.
    const damaged = [
      (id: string) => `{${prefix}}:reqev:${id}`,
      () => `{${prefix}}:list:approved`,
      () => `{${prefix}}:list:pending`,
    ];
    try {
      for (const keyOf of damaged) {
        const request = sampleRequest();
        await store.create(request, [sampleEvent(request.id)]);
        const key = keyOf(request.id);
        const type = await raw.type(key);
        const saved = type === "zset" ? await raw.zRange(key, 0, -1) : [];
        await raw.del(key);
        await raw.set(key, "not a list or a sorted set");
        const streamLength = await raw.xLen(`{${prefix}}:events`);
        const error = await rejection(
          store.commit({ ...request, status: "approved", version: 2 }, 1, [
            sampleEvent(request.id, "request.approved"),
          ]),
        );
        expect(isWritError(error) && error.code).toBe("store_unavailable");
        // Nothing of the change was written: the request, the stream, the indexes.
        expect(await store.get(request.id)).toEqual(request);
        expect(await raw.xLen(`{${prefix}}:events`)).toBe(streamLength);
        expect(await store.due(Number.MAX_SAFE_INTEGER, 10)).toContain(request.id);
        await raw.del(key);
        const members = saved.map((value) => ({ score: 0, value }));
        if (members.length > 0) await raw.zAdd(key, members);
      }
      expect((await store.list({ status: "approved", limit: 10 })).items).toEqual([]);
    } finally {
      await store.close();
    }
  });

  // An entry written by hand near the last possible id: the stream has room
  // for `room` more automatic ids, and each change carries `room + 1` events.
  it.each([
    { room: 0, what: "takes no more entries" },
    { room: 1, what: "can take only some of a change's events" },
  ])("records nothing of a change when the stream $what", async ({ room }) => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client, prefix, logger: silentLogger });
    const stream = `{${prefix}}:events`;
    try {
      const existing = sampleRequest({ expiresAt: 1 });
      await store.create(existing, [sampleEvent(existing.id)]);
      const max = 18446744073709551615n;
      await raw.sendCommand(["XADD", stream, `${max}-${max - BigInt(room)}`, "x", "y"]);
      const fresh = sampleRequest({ expiresAt: 1 });
      const events = (id: string, type: Parameters<typeof sampleEvent>[1]) =>
        Array.from({ length: room + 1 }, () => sampleEvent(id, type));
      const attempts = [
        store.create(fresh, events(fresh.id, "request.created")),
        store.commit(
          { ...existing, status: "approved", version: 2 },
          1,
          events(existing.id, "request.approved"),
        ),
        store.append(events(existing.id, "token.replay_blocked")),
      ];
      for (const attempt of attempts) {
        const error = await rejection(attempt);
        expect(isWritError(error) && error.code).toBe("store_unavailable");
      }
      // Neither state without its events, nor an event without its state.
      expect(await raw.xLen(stream)).toBe(2);
      expect(await raw.exists(`{${prefix}}:req:${fresh.id}`)).toBe(0);
      expect(await raw.get(`{${prefix}}:seq`)).toBe("1");
      expect(await raw.lRange(`{${prefix}}:reqev:${existing.id}`, 0, -1)).toHaveLength(1);
      expect(await store.get(existing.id)).toEqual(existing);
      expect(await raw.zRange(`{${prefix}}:list`, 0, -1)).toHaveLength(1);
      expect(await raw.zRange(`{${prefix}}:list:approved`, 0, -1)).toEqual([]);
      expect(await store.due(1, 10)).toEqual([existing.id]);
    } finally {
      await store.close();
    }
  });

  it("refuses a creation counter INCR would refuse, before the first write", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client, prefix, logger: silentLogger });
    const stream = `{${prefix}}:events`;
    try {
      for (const value of ["nan", "1e3", "0x10", " 5", "5.5", "abc"]) {
        await raw.set(`{${prefix}}:seq`, value);
        const fresh = sampleRequest();
        const error = await rejection(store.create(fresh, [sampleEvent(fresh.id)]));
        expect(isWritError(error) && error.code, value).toBe("store_unavailable");
        expect(await raw.exists(`{${prefix}}:req:${fresh.id}`), value).toBe(0);
        expect(await raw.get(`{${prefix}}:seq`), value).toBe(value);
        expect(await raw.exists(stream), value).toBe(0);
      }
    } finally {
      await store.close();
    }
  });

  it("keeps every writ key of a Cluster in one slot, so one shard holds them all", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client: clusterClient, prefix, logger: silentLogger });
    try {
      for (let i = 0; i < 5; i++) {
        const request = sampleRequest();
        await store.create(request, [sampleEvent(request.id)]);
        await store.commit({ ...request, status: "approved", version: 2 }, 1, [
          sampleEvent(request.id, "request.approved"),
        ]);
      }
      const counts = await Promise.all(
        cluster.nodes.map(async (node) => {
          const nodeClient = await plainClient(node.url).connect();
          try {
            return (await nodeClient.keys(`{${prefix}}:*`)).length;
          } finally {
            await nodeClient.close();
          }
        }),
      );
      // Request hashes and event-id lists (5 each), the list, the approved list
      // (the emptied pending list is gone), due, the counter and the stream.
      expect(counts.filter((n) => n > 0)).toEqual([15]);
    } finally {
      await store.close();
    }
  });
});

describe("redis store reads of records writ did not write", () => {
  it("answers store_unavailable, never a 500, for a record that parses but is not that request", async () => {
    const prefix = freshPrefix();
    const store = createRedisStore({ client, prefix, logger: silentLogger });
    const t = await startTestWrit({}, { store });
    try {
      const pending = await createRequest(t, CUSTOMERS_EXPORT);
      const key = `{${prefix}}:req:${pending.id}`;
      const stored = JSON.parse((await raw.hGet(key, "d")) as string);
      const damaged = [
        { ...stored, reviews: undefined },
        { ...stored, reviews: "none" },
        { ...stored, decision: null },
        { ...stored, status: 5 },
        { ...stored, createdAt: "yesterday" },
        { ...stored, credential: { type: "jwt" } },
        // Another request's record under this request's key: the list, too, reads
        // it as the request its index names, and must not show it in its place.
        { ...stored, id: "req_BBBBBBBBBBBBBBBBBBBBBB" },
      ];
      for (const record of damaged) {
        await raw.hSet(key, "d", JSON.stringify(record));
        for (const read of [
          store.get(pending.id),
          store.list({ limit: 10 }),
          store.list({ limit: 10, status: "pending", agentId: stored.agentId }),
        ]) {
          const error = await rejection(read);
          expect(isWritError(error) && error.code).toBe("store_unavailable");
        }
        await expectError(
          await t.call("GET", `/v1/requests/${pending.id}`, { key: keyOf(t, "report-agent") }),
          503,
          "store_unavailable",
        );
        await expectError(
          await t.call("GET", "/v1/requests", { key: keyOf(t, "dana") }),
          503,
          "store_unavailable",
        );
      }
      await raw.hSet(key, "d", JSON.stringify(stored));
      expect((await store.get(pending.id))?.id).toBe(pending.id);
    } finally {
      await t.close();
    }
  });
});

/** The sorted-set commands these tests write index entries with, on either connection. */
interface SortedSets {
  zAdd(key: string, member: { score: number; value: string }): Promise<unknown>;
  zRangeWithScores(key: string, start: number, stop: number): Promise<unknown>;
  hGet(key: string, field: string): Promise<unknown>;
}

describe.each([
  ["standalone", () => client],
  ["cluster of 3 masters", () => clusterClient],
])("redis store index entries something else wrote (%s)", (_name, connection) => {
  let prefix: string;
  let store: RedisStore;
  let sets: SortedSets;
  beforeEach(() => {
    prefix = freshPrefix();
    store = createRedisStore({ client: connection(), prefix, logger: silentLogger });
    sets = connection() as unknown as SortedSets;
  });
  afterEach(async () => {
    await store.close();
  });

  const T0 = Date.parse("2026-01-15T09:00:00.000Z");
  const escalating = (overrides: Partial<AccessRequest> = {}) => {
    const base = sampleRequest();
    return sampleRequest({
      decision: { ...base.decision, escalation: { afterSeconds: 300, groups: ["sec"] } },
      ...overrides,
    });
  };
  const entries = async (index: string) => sets.zRangeWithScores(`{${prefix}}:${index}`, 0, -1);

  it("drops escalation entries of requests decided, escalated or gone, and keeps the others", async () => {
    const decided = escalating();
    const escalated = escalating();
    const waiting = escalating();
    for (const request of [decided, escalated, waiting]) {
      expect((await store.create(request, [sampleEvent(request.id)])).ok).toBe(true);
    }
    const approved = { ...decided, status: "approved" as const, version: 2 };
    expect((await store.commit(approved, 1, [])).ok).toBe(true);
    const done = { ...escalated, version: 2, escalatedAt: T0 + 300_000 };
    expect((await store.commit(done, 1, [])).ok).toBe(true);
    // Left behind by a writer that knew no escalation index.
    const gone = "req_AAAAAAAAAAAAAAAAAAAAAA";
    for (const id of [decided.id, escalated.id, gone]) {
      await sets.zAdd(`{${prefix}}:escalate`, { score: T0 + 300_000, value: id });
    }
    await sets.zAdd(`{${prefix}}:due`, { score: 1, value: gone });
    expect(await store.escalationsDue(T0 + 300_000, 10)).toHaveLength(4);

    for (const id of [decided.id, escalated.id, gone]) expect(await store.reindex(id)).toBe(true);
    // What the store wrote itself is right already.
    expect(await store.reindex(waiting.id)).toBe(false);
    expect(await store.reindex(decided.id)).toBe(false);
    expect(await store.escalationsDue(T0 + 300_000, 10)).toEqual([waiting.id]);
    expect(await store.due(T0, 10)).toEqual([]);
    expect(new Set(await store.due(T0 + 900_000, 10))).toEqual(
      new Set([decided.id, escalated.id, waiting.id]),
    );
  });

  it("puts back an entry a request should have, at the time its record says", async () => {
    const request = escalating();
    expect((await store.create(request, [sampleEvent(request.id)])).ok).toBe(true);
    await sets.zAdd(`{${prefix}}:escalate`, { score: 1, value: request.id });
    expect(await store.reindex(request.id)).toBe(true);
    expect(await entries("escalate")).toEqual([{ value: request.id, score: T0 + 300_000 }]);
  });

  it("leaves the entry a commit wrote after the record was read", async () => {
    const request = escalating();
    expect((await store.create(request, [sampleEvent(request.id)])).ok).toBe(true);
    const decided = { ...request, status: "approved" as const, version: 2 };
    expect((await store.commit(decided, 1, [])).ok).toBe(true);
    await sets.zAdd(`{${prefix}}:escalate`, { score: T0 + 300_000, value: request.id });
    // Between the read of the record and the script, another writer commits a
    // version that escalates again: its entry is right and stays.
    const again = { ...decided, status: "pending" as const, version: 3, createdAt: T0 + 1 };
    const racing = createRedisStore({
      client: new Proxy(connection(), {
        get(target, property, receiver) {
          if (property !== "hGet") return Reflect.get(target, property, receiver);
          return async (key: string, field: string) => {
            const read = await target.hGet(key, field);
            expect((await store.commit(again, 2, [])).ok).toBe(true);
            return read;
          };
        },
      }),
      prefix,
      logger: silentLogger,
    });
    try {
      expect(await racing.reindex(request.id)).toBe(false);
    } finally {
      await racing.close();
    }
    expect(await entries("escalate")).toEqual([{ value: request.id, score: T0 + 300_001 }]);
  });

  it("lists only requests still awaiting their review after the fact, past stale members", async () => {
    const credential = { type: "jwt" as const, id: "jti_x", issuedAt: T0, expiresAt: T0 + 1000 };
    const base = sampleRequest();
    const issued = (createdAt: number, decision: Partial<AccessRequest["decision"]> = {}) => {
      const request = sampleRequest({
        status: "approved",
        createdAt,
        decision: { ...base.decision, effect: "allow", requirements: [], ...decision },
      });
      return { request, next: { ...request, status: "issued" as const, credential, version: 2 } };
    };
    const waiting = issued(T0, { reviewAfter: ["sec"] });
    const reviewed = issued(T0 + 1, { reviewAfter: ["sec"] });
    const unasked = issued(T0 + 2);
    for (const { request, next } of [waiting, reviewed, unasked]) {
      expect((await store.create(request, [sampleEvent(request.id)])).ok).toBe(true);
      expect((await store.commit(next, 1, [sampleEvent(request.id, "credential.issued")])).ok).toBe(
        true,
      );
    }
    const review = {
      reviewerId: "carol",
      verdict: "ok" as const,
      groups: ["sec"],
      at: T0 + 5,
      channel: "api" as const,
    };
    const done = { ...reviewed.next, version: 3, reviewedAfter: review };
    expect((await store.commit(done, 2, [])).ok).toBe(true);
    // Members of requests that do not wait, as a hand edit or a restore leaves them.
    for (const { request } of [reviewed, unasked]) {
      const member = (await sets.hGet(`{${prefix}}:req:${request.id}`, "m")) as string;
      await sets.zAdd(`{${prefix}}:afterreview`, { score: 0, value: member });
    }
    const page = await store.list({ awaiting: "review_after", limit: 1 });
    expect(page.items.map((r) => r.id)).toEqual([waiting.request.id]);
    expect((await store.list({ awaiting: "review_after", limit: 10 })).items).toEqual([
      waiting.next,
    ]);
    // The sweep's repair takes them out of the index for good.
    for (const { request } of [reviewed, unasked])
      expect(await store.reindex(request.id)).toBe(true);
    expect(await entries("afterreview")).toHaveLength(1);
  });
});

describe("redis store configuration", () => {
  it("refuses a client without its scripts, and keys outside its hash tag", () => {
    const bare = createClient();
    expect(() =>
      createRedisStore({ client: bare as unknown as RedisStoreClient, logger: silentLogger }),
    ).toThrow(TypeError);
    for (const prefix of ["", "a{b}", "x".repeat(65), "sp ace"]) {
      expect(() => createRedisStore({ client, prefix, logger: silentLogger })).toThrow(TypeError);
    }
    for (const streamKey of ["writ:events", "{other}:events", "{}:{writ}:events"]) {
      expect(() => createRedisStore({ client, streamKey, logger: silentLogger })).toThrow(
        TypeError,
      );
    }
    expect(() =>
      createRedisStore({ client, streamKey: "audit:{writ}:events", logger: silentLogger }),
    ).not.toThrow();
    expect(() =>
      createRedisStore({
        client,
        streamTrim: { maxLen: 0, followerTimeoutMs: 1000 },
        logger: silentLogger,
      }),
    ).toThrow(TypeError);
  });

  it("connectRedis refuses bad options without echoing them", async () => {
    const secret = "hunter2-do-not-log";
    for (const options of [
      {},
      { url: server.url, clusterNodes: cluster.urls },
      { url: `http://:${secret}@127.0.0.1:1` },
      { url: `redis://:${secret}@[bad` },
      { clusterNodes: [] },
      { url: `redis://:${secret}@127.0.0.1:1`, tls: true },
      { url: `redis://:%E0%A4%A${secret}@127.0.0.1:1` },
      { clusterNodes: [`redis://127.0.0.1:1`, `rediss://:${secret}@127.0.0.1:2`] },
      { sentinel: { name: "bad name", nodes: [`redis://127.0.0.1:1`] } },
      { url: `redis://:${secret}@127.0.0.1:1`, connectTimeoutMs: 0 },
    ]) {
      const error = await rejection(connectRedis({ ...options, logger: silentLogger }));
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).not.toContain(secret);
    }
  });
});

describe("redis store outages", () => {
  const password = `pw-${randomBytes(12).toString("hex")}`;
  let guarded: RedisServer;
  beforeAll(async () => {
    guarded = await startRedisServer({ password, appendOnly: true });
  });
  afterAll(async () => {
    await guarded?.dispose();
  });

  it("fails closed while Redis is down, recovers when it is back, and never shows the password", async () => {
    const logger = recordingLogger();
    const own = await connectRedis({ url: guarded.url, logger, maxReconnectDelayMs: 200 });
    const store = createRedisStore({ client: own, prefix: freshPrefix(), logger });
    const messages: string[] = [];
    try {
      const request = sampleRequest();
      await store.create(request, [sampleEvent(request.id)]);
      const waiting = store.waitForChange(request.id, 1, 30_000);
      const started = performance.now();

      await guarded.stop("SIGKILL");
      expect(await store.ready()).toBe(false);
      const failures = [
        store.get(request.id),
        store.create(sampleRequest(), []),
        store.commit({ ...request, version: 2 }, 1, [sampleEvent(request.id)]),
        store.append([sampleEvent(request.id, "token.replay_blocked")]),
        store.list({ limit: 10 }),
        store.due(Date.now(), 10),
        store.events({ limit: 10 }),
        store.events({ requestId: request.id, limit: 10 }),
        store.ping(),
      ];
      for (const failure of failures) {
        const error = await rejection(failure);
        expect(isWritError(error) && error.code).toBe("store_unavailable");
        messages.push(error.message);
      }
      // Refused at once (no offline queue), not after the operation deadline.
      expect(performance.now() - started).toBeLessThan(3_000);

      await guarded.restart();
      await untilReady(store, own);
      // The same store, no restart: the data is back (AOF) and changes go through.
      expect(await store.get(request.id)).toEqual(request);
      const committed = await store.commit({ ...request, status: "approved", version: 2 }, 1, [
        sampleEvent(request.id, "request.approved"),
      ]);
      expect(committed.ok).toBe(true);
      // The long-poll that began before the outage is woken by the change after it.
      await waiting;
      expect(performance.now() - started).toBeLessThan(20_000);
    } finally {
      await store.close();
      await own.close();
    }
    const wrong = await rejection(
      connectRedis({
        url: guarded.url.replace(password, `${password}-wrong`),
        connectTimeoutMs: 1_000,
        logger,
      }),
    );
    expect(isWritError(wrong) && wrong.code).toBe("store_unavailable");
    messages.push(wrong.message);
    for (const text of [...messages, ...logger.lines]) expect(text).not.toContain(password);
    expect(logger.lines.some((line) => line.includes("redis store unavailable"))).toBe(true);
    expect(logger.lines.some((line) => line.includes("redis store recovered"))).toBe(true);
  });

  /** A store on the freezable server, connected as writ serve connects: no per-command timer, the store's own deadline only. */
  async function frozenStore() {
    const own = await connectRedis({
      url: guarded.url,
      commandTimeouts: false,
      logger: silentLogger,
    });
    const store = createRedisStore({
      client: own,
      prefix: freshPrefix(),
      operationTimeoutMs: 300,
      logger: silentLogger,
    });
    return { own, store };
  }

  it("answers store_unavailable when Redis stops answering; the lost commit fails closed", async () => {
    const { own, store } = await frozenStore();
    try {
      const request = sampleRequest({ status: "approved" });
      await store.create(request, [sampleEvent(request.id)]);
      const issued = { ...request, status: "issued" as const, version: 2 };
      guarded.freeze();
      let error: Error;
      try {
        // Sent, but the reply never comes in time: the caller must treat it as failed.
        error = await rejection(
          store.commit(issued, 1, [sampleEvent(request.id, "credential.issued")]),
        );
        expect(await store.ready()).toBe(false);
      } finally {
        guarded.thaw();
      }
      expect(isWritError(error) && error.code).toBe("store_unavailable");
      await untilReady(store, own);
      // Redis ran the script once it woke: the request is issued with its record,
      // and a second collect (the same compare-and-swap) can never succeed.
      expect(await store.get(request.id)).toEqual(issued);
      const recorded = await store.events({ requestId: request.id, limit: 10 });
      expect(recorded.map((e) => e.type)).toEqual(["request.created", "credential.issued"]);
      expect(
        await store.commit({ ...issued, credential: undefined } as never, 1, [
          sampleEvent(request.id, "credential.issued"),
        ]),
      ).toEqual({ ok: false, reason: "conflict" });
    } finally {
      await store.close();
      await own.close();
    }
  });

  it("stops paging through the stream once a read has answered store_unavailable", async () => {
    const { own, store } = await frozenStore();
    /** XRANGE calls Redis has run, read on the store's own connection: after all it sent. */
    const info = (own as unknown as { info(section: string): Promise<string> }).info.bind(own);
    const ranges = async () =>
      Number(/cmdstat_xrange:calls=(\d+)/.exec(await info("commandstats"))?.[1] ?? 0);
    try {
      // Events none of which matches the filter below: a filtered read pages
      // through all of them, 500 at a time.
      const request = sampleRequest();
      await store.create(request, []);
      for (let i = 0; i < 4; i++) {
        await store.append(
          Array.from({ length: 500 }, () => sampleEvent(request.id, "token.replay_blocked")),
        );
      }
      const before = await ranges();
      guarded.freeze();
      let error: Error;
      try {
        error = await rejection(store.events({ type: "audit.gap", limit: 10 }));
      } finally {
        guarded.thaw();
      }
      expect(isWritError(error) && error.code).toBe("store_unavailable");
      // Each round trip on this connection lets a read still running send its
      // next page first (replies come in order), had it not stopped.
      for (let i = 0; i < 6; i++) await ranges();
      // The page that was on its way when the caller was answered, and no more.
      expect((await ranges()) - before).toBe(1);
    } finally {
      await store.close();
      await own.close();
    }
  });
});

describe("the whole HTTP flow on Redis", () => {
  it("request, two approvals, collect, consume, replay", async () => {
    const store = createRedisStore({ client, prefix: freshPrefix(), logger: silentLogger });
    const t = await startTestWrit({}, { store });
    try {
      const pending = await createRequest(t, CUSTOMERS_EXPORT);
      expect(pending.status).toBe("pending");
      const longPoll = t.call("GET", `/v1/requests/${pending.id}?wait=30&while=pending`, {
        key: keyOf(t, "report-agent"),
      });
      await approveAs(t, "bob", pending.id);
      const approved = await approveAs(t, "carol", pending.id);
      expect(approved.status).toBe("approved");
      const polled = await expectJson<{ status: string }>(await longPoll, 200);
      expect(polled.status).toBe("approved");

      const token = await collectToken(t, pending.id);
      await expectError(
        await t.call("POST", `/v1/requests/${pending.id}/credential`, {
          key: keyOf(t, "report-agent"),
        }),
        410,
        "credential_already_issued",
      );
      const server = keyOf(t, "billing-api");
      const used = await expectJson<{ active: boolean; request_id: string }>(
        await t.call("POST", "/v1/tokens/consume", { key: server, body: { token } }),
        200,
      );
      expect(used).toMatchObject({ active: true, request_id: pending.id });
      await expectError(
        await t.call("POST", "/v1/tokens/consume", { key: server, body: { token } }),
        409,
        "token_replayed",
      );

      const events = await allEvents(t, { request_id: pending.id });
      expect(events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
      expect(events.every((e) => /^\d+-\d+$/.test(e.id))).toBe(true);
      expect(JSON.stringify(events)).not.toContain(token);

      // The Redis store's list cursors page through the API.
      const second = await createRequest(t, CUSTOMERS_EXPORT);
      const listed: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 5; page++) {
        const query = new URLSearchParams({ limit: "1", ...(cursor ? { cursor } : {}) });
        const body = await expectJson<{ items: { id: string }[]; next?: string }>(
          await t.call("GET", `/v1/requests?${query}`, { key: keyOf(t, "dana") }),
          200,
        );
        listed.push(...body.items.map((r) => r.id));
        if (body.next === undefined) break;
        cursor = body.next;
      }
      expect(listed).toEqual([second.id, pending.id]);
    } finally {
      await t.close();
    }
  });
});
