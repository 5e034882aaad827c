import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, createRedisStore } from "../../../src/adapters/redis-store.js";
import { silentLogger } from "../../../src/ports/logger.js";
import { type RedisServer, redisCommand, startRedisServer } from "../../support/redis.js";
import { startTcpProxy } from "../../support/tcp-proxy.js";
import { sampleEvent, sampleRequest } from "../store-contract.js";

const freshPrefix = () => `t${randomBytes(6).toString("hex")}`;
const DEADLINE_MS = 300;

/** How long `op` took to settle, or "not settled" once `limitMs` have passed. */
async function settleTime(op: Promise<unknown>, limitMs: number): Promise<number | "not settled"> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      op.then(
        () => performance.now() - started,
        () => performance.now() - started,
      ),
      new Promise<"not settled">((resolve) => {
        timer = setTimeout(() => resolve("not settled"), limitMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe("the Redis store on a connection that goes silent", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  /**
   * A store on its own proxied connection. The health check is far off, as on
   * a Cluster or Sentinel (which it does not watch), or in the seconds before
   * it first notices: nothing else ends a silent connection meanwhile.
   */
  async function silentStore() {
    const proxy = await startTcpProxy(redis.port);
    const client = await connectRedis({
      url: proxy.url,
      commandTimeouts: false,
      healthCheckMs: 600_000,
      logger: silentLogger,
    });
    const store = createRedisStore({
      client,
      prefix: freshPrefix(),
      operationTimeoutMs: DEADLINE_MS,
      closeClient: true,
      logger: silentLogger,
    });
    return { proxy, client, store };
  }

  it("closes within its deadline though replies are still pending, so a stop ends", async () => {
    const { proxy, client, store } = await silentStore();
    try {
      const request = sampleRequest();
      await store.create(request, [sampleEvent(request.id)]);
      proxy.stall();
      // The read's caller gets its 503; its command stays pending on the connection.
      await expect(store.get(request.id)).rejects.toMatchObject({ code: "store_unavailable" });
      const took = await settleTime(store.close(), 5_000);
      expect(took).not.toBe("not settled");
      expect(took as number).toBeLessThan(DEADLINE_MS + 1_000);
      expect(client.isOpen).toBe(false);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it("still drains on a healthy connection: a change in flight when the close begins finishes", async () => {
    const client = await connectRedis({
      url: redis.url,
      commandTimeouts: false,
      logger: silentLogger,
    });
    const prefix = freshPrefix();
    const store = createRedisStore({
      client,
      prefix,
      operationTimeoutMs: 3_000,
      closeClient: true,
      logger: silentLogger,
    });
    try {
      await store.lastEventId();
      // Redis holds writes back for a moment, as a busy server answers late.
      await redisCommand(redis.url, ["CLIENT", "PAUSE", "500", "WRITE"]);
      const request = sampleRequest();
      const creating = store.create(request, [sampleEvent(request.id)]);
      await store.close();
      await expect(creating).resolves.toMatchObject({ ok: true });
      const stored = await redisCommand(redis.url, ["HGET", `{${prefix}}:req:${request.id}`, "v"]);
      expect(stored).toBe("1");
    } finally {
      client.destroy();
    }
  });

  it("wakes a long-poll whose check gets no answer, instead of holding it to the end of its wait", async () => {
    const { proxy, client, store } = await silentStore();
    try {
      const request = sampleRequest();
      await store.create(request, [sampleEvent(request.id)]);
      // The store's own connection goes silent; the change feed's reader,
      // connecting afresh, still reaches Redis.
      proxy.stall();
      const took = await settleTime(
        store.waitForChange(request.id, request.version, 20_000),
        5_000,
      );
      expect(took).not.toBe("not settled");
      expect(took as number).toBeLessThan(DEADLINE_MS + 2_000);
      // Read again, the caller answers store_unavailable: a clear 503, not a hang.
      await expect(store.get(request.id)).rejects.toMatchObject({ code: "store_unavailable" });
    } finally {
      await settleTime(store.close(), 5_000);
      client.destroy();
      await proxy.close();
    }
  });
});
