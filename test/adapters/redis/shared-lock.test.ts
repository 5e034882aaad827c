import { createClient } from "redis";
import { describe, expect, it } from "vitest";
import { createRedisSharedLock } from "../../../src/adapters/redis/shared-lock.js";
import type { Logger } from "../../../src/ports/logger.js";
import type { Timer } from "../../../src/ports/timer.js";
import { redisWithTwoConnectionsPerFile } from "../../support/redis.js";

// The lock every writ process on one Redis shares (replicas, and the workers
// of one `writ serve`): SET NX PX with a token, released by compare-and-delete.

// Two connections, as two processes would have.
const redis = redisWithTwoConnectionsPerFile();
const warnings: unknown[] = [];
const logger: Logger = { info() {}, warn: (message) => warnings.push(message), error() {} };
let n = 0;
const prefix = () => `{writ-lock-${++n}}`;

/** A timer that ends every wait at once, counting them: the wait for a lock, without time. */
function countingTimer() {
  const waits: number[] = [];
  const timer: Timer = {
    sleep(ms) {
      waits.push(ms);
      return Promise.resolve();
    },
  };
  return { timer, waits };
}

describe("the Redis shared lock", () => {
  it("lets one holder in at a time, across connections", async () => {
    const keyPrefix = prefix();
    const lockA = createRedisSharedLock({ client: redis.a, prefix: keyPrefix, logger });
    const lockB = createRedisSharedLock({
      client: redis.b,
      prefix: keyPrefix,
      retryMs: 10,
      logger,
    });
    const order: string[] = [];
    let finishA!: () => void;
    const aMayFinish = new Promise<void>((resolve) => {
      finishA = resolve;
    });
    let aStarted!: () => void;
    const aIn = new Promise<void>((resolve) => {
      aStarted = resolve;
    });
    const a = lockA.withLock("role-x", async () => {
      order.push("a in");
      aStarted();
      await aMayFinish;
      order.push("a out");
    });
    await aIn;
    // Held with a lease, under the hash tag.
    const ttl = await redis.a.pTTL(`${keyPrefix}:lock:role-x`);
    expect(ttl).toBeGreaterThan(50_000);
    const b = lockB.withLock("role-x", async () => {
      order.push("b in");
      return "b's result";
    });
    // Another name is another lock.
    expect(await lockB.withLock("role-y", async () => "free")).toBe("free");
    finishA();
    await a;
    expect(await b).toBe("b's result");
    expect(order).toEqual(["a in", "a out", "b in"]);
    expect(await redis.a.exists(`${keyPrefix}:lock:role-x`)).toBe(0);
  });

  it("gives up with conflict after its bounded wait, without running the work", async () => {
    const keyPrefix = prefix();
    await redis.a.set(`${keyPrefix}:lock:busy`, "another-holder", { PX: 60_000 });
    const { timer, waits } = countingTimer();
    const lock = createRedisSharedLock({
      client: redis.b,
      prefix: keyPrefix,
      waitMs: 500,
      retryMs: 100,
      timer,
      logger,
    });
    let ran = false;
    await expect(
      lock.withLock("busy", async () => {
        ran = true;
      }),
    ).rejects.toMatchObject({ code: "conflict" });
    expect(ran).toBe(false);
    expect(waits).toEqual([100, 100, 100, 100, 100]);
    expect(await redis.a.get(`${keyPrefix}:lock:busy`)).toBe("another-holder");
  });

  it("never deletes a lock another holder took after its own lease lapsed", async () => {
    const keyPrefix = prefix();
    const key = `${keyPrefix}:lock:lapsed`;
    const lock = createRedisSharedLock({ client: redis.a, prefix: keyPrefix, logger });
    const before = warnings.length;
    await lock.withLock("lapsed", async () => {
      // The lease ran out meanwhile and another process took the lock.
      await redis.b.set(key, "next-holder", { PX: 60_000 });
    });
    expect(await redis.a.get(key)).toBe("next-holder");
    expect(warnings.slice(before)).toEqual(["shared lock lapsed before its holder finished"]);
  });

  it("releases the lock when the work fails", async () => {
    const keyPrefix = prefix();
    const lock = createRedisSharedLock({ client: redis.a, prefix: keyPrefix, logger });
    await expect(
      lock.withLock("failing", async () => {
        throw new Error("work failed");
      }),
    ).rejects.toThrow("work failed");
    expect(await redis.a.exists(`${keyPrefix}:lock:failing`)).toBe(0);
  });

  it("answers store_unavailable when Redis stops answering", async () => {
    const own = createClient({ url: redis.server.url, commandOptions: { timeout: 0 } });
    await own.connect();
    const lock = createRedisSharedLock({
      client: own,
      prefix: prefix(),
      operationTimeoutMs: 200,
      logger,
    });
    redis.server.freeze();
    try {
      await expect(lock.withLock("frozen", async () => "ran")).rejects.toMatchObject({
        code: "store_unavailable",
      });
    } finally {
      redis.server.thaw();
      own.destroy();
    }
  });
});
