import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisRateLimiter } from "../../src/adapters/redis-rate-limiter.js";
import { WritError } from "../../src/domain/errors.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { rateLimiterContract } from "./rate-limiter-contract.js";

let redis: RedisServer;
let client: ReturnType<typeof createClient>;
let run = 0;

beforeAll(async () => {
  redis = await startRedisServer();
  client = createClient({ url: redis.url });
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await redis?.dispose();
});

// Each limiter gets its own prefix: a fresh state per test, on one server.
rateLimiterContract("redis", (limitFor) =>
  createRedisRateLimiter({ client, limitFor, prefix: `{t${++run}}` }),
);

describe("redis rate limiter", () => {
  it("two limiters on one Redis share one limit (as two replicas do)", async () => {
    const limitFor = () => ({ perMinute: 1, burst: 4 });
    const other = createClient({ url: redis.url });
    await other.connect();
    try {
      const a = createRedisRateLimiter({ client, limitFor, prefix: "{shared}" });
      const b = createRedisRateLimiter({ client: other, limitFor, prefix: "{shared}" });
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).take("agent")),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(4);
    } finally {
      await other.close();
    }
  });

  it("keys live under the prefix's hash tag and expire once the slot has passed", async () => {
    const limiter = createRedisRateLimiter({
      client,
      limitFor: () => ({ perMinute: 60, burst: 1 }),
      prefix: "{tagged}",
    });
    await limiter.take("report-agent");
    const ttl = await client.pTTL("{tagged}:ratelimit:report-agent");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1001);
    // Subjects that are not plain ids are stored by their hash, never raw.
    await limiter.take("a b\n{c}");
    const keys = await client.keys("{tagged}:*");
    expect(
      keys.every((k) => /^\{tagged\}:ratelimit:(report-agent|sha256:[0-9a-f]{64})$/.test(k)),
    ).toBe(true);
  });

  it("reloads its script after Redis lost it (restart, failover)", async () => {
    const limiter = createRedisRateLimiter({
      client,
      limitFor: () => ({ perMinute: 1, burst: 2 }),
      prefix: "{flush}",
    });
    expect((await limiter.take("a")).allowed).toBe(true);
    await client.scriptFlush();
    expect((await limiter.take("a")).allowed).toBe(true);
    expect((await limiter.take("a")).allowed).toBe(false);
  });

  it("fails closed with store_unavailable when Redis is unreachable", async () => {
    const down = await startRedisServer();
    const lonely = createClient({
      url: down.url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false },
    });
    await lonely.connect();
    const seen: unknown[] = [];
    const limiter = createRedisRateLimiter({
      client: lonely,
      limitFor: () => ({ perMinute: 1, burst: 1 }),
      onError: (error) => seen.push(error),
    });
    lonely.on("error", () => {});
    await down.stop("SIGKILL");
    const error = await limiter.take("a").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritError);
    expect((error as WritError).code).toBe("store_unavailable");
    expect(seen).toHaveLength(1);
    await lonely.destroy();
    await down.dispose();
  });

  it("refuses an answer of the wrong shape instead of allowing", async () => {
    const limiter = createRedisRateLimiter({
      client: {
        evalSha: async () => "OK",
        eval: async () => "OK",
      },
      limitFor: () => ({ perMinute: 1, burst: 1 }),
    });
    await expect(limiter.take("a")).rejects.toMatchObject({ code: "store_unavailable" });
  });

  it("refuses with store_unavailable, within its deadline, when Redis stops answering", async () => {
    const own = createClient({ url: redis.url, commandOptions: { timeout: 0 } });
    await own.connect();
    const limiter = createRedisRateLimiter({
      client: own,
      limitFor: () => ({ perMinute: 60, burst: 10 }),
      prefix: "{frozen}",
      operationTimeoutMs: 200,
    });
    redis.freeze();
    try {
      await expect(limiter.take("report-agent")).rejects.toMatchObject({
        code: "store_unavailable",
      });
    } finally {
      redis.thaw();
    }
    expect(await limiter.take("report-agent")).toEqual({ allowed: true });
    await own.close();
  });
});
