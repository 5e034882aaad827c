import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import { createRedisNotificationState } from "../../src/adapters/notification-state-redis.js";
import type { NotificationState } from "../../src/ports/notification-state.js";
import { ManualClock } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";

/** What every notification state must do, run against each adapter. */
function contract(
  name: string,
  make: () => { state: NotificationState; expire: (ms: number) => Promise<void> },
) {
  describe(name, () => {
    it("keeps a cursor per worker", async () => {
      const { state } = make();
      expect(await state.cursor("notify:slack")).toBeUndefined();
      await state.saveCursor("notify:slack", "17");
      await state.saveCursor("notify:teams", "3");
      expect(await state.cursor("notify:slack")).toBe("17");
      expect(await state.cursor("notify:teams")).toBe("3");
    });

    it("merges facts per scope and request", async () => {
      const { state } = make();
      expect(await state.facts("slack", "req_a")).toEqual({});
      await state.saveFacts("slack", "req_a", { "msg:c:C1": '{"channel":"C1","ts":"1.2"}' });
      await state.saveFacts("slack", "req_a", { timeline: "[]" });
      await state.saveFacts("teams", "req_a", { "sent:5": "1" });
      await state.saveFacts("slack", "req_a", {});
      expect(await state.facts("slack", "req_a")).toEqual({
        "msg:c:C1": '{"channel":"C1","ts":"1.2"}',
        timeline: "[]",
      });
      expect(await state.facts("teams", "req_a")).toEqual({ "sent:5": "1" });
      expect(await state.facts("slack", "req_b")).toEqual({});
    });

    it("says a key is new once, until it expires", async () => {
      const { state, expire } = make();
      expect(await state.firstSeen("slack:body:abc", 200)).toBe(true);
      expect(await state.firstSeen("slack:body:abc", 200)).toBe(false);
      expect(await state.firstSeen("slack:body:def", 200)).toBe(true);
      await expire(250);
      expect(await state.firstSeen("slack:body:abc", 200)).toBe(true);
    });

    it("gives a lease to one holder at a time until it lapses", async () => {
      const { state, expire } = make();
      expect(await state.lease("notify:slack", "a", 200)).toBe(true);
      expect(await state.lease("notify:slack", "b", 200)).toBe(false);
      expect(await state.lease("notify:slack", "a", 200)).toBe(true);
      expect(await state.lease("notify:teams", "b", 200)).toBe(true);
      await expire(250);
      expect(await state.lease("notify:slack", "b", 200)).toBe(true);
      expect(await state.lease("notify:slack", "a", 200)).toBe(false);
    });
  });
}

const clock = new ManualClock();
contract("memory notification state", () => ({
  state: createMemoryNotificationState({ clock }),
  expire: async (ms) => clock.advance(ms / 1000),
}));

describe("memory notification state bounds", () => {
  it("forgets the least recently updated requests beyond its limit", async () => {
    const state = createMemoryNotificationState({ clock, maxRequests: 2 });
    await state.saveFacts("slack", "r1", { a: "1" });
    await state.saveFacts("slack", "r2", { a: "2" });
    await state.saveFacts("slack", "r1", { b: "1" });
    await state.saveFacts("slack", "r3", { a: "3" });
    expect(await state.facts("slack", "r2")).toEqual({});
    expect(await state.facts("slack", "r1")).toEqual({ a: "1", b: "1" });
  });
});

describe("redis", () => {
  let server: RedisServer;
  let client: ReturnType<typeof createClient>;
  beforeAll(async () => {
    server = await startRedisServer();
    client = createClient({ url: server.url });
    await client.connect();
  }, 20_000);
  afterAll(async () => {
    await client?.close();
    await server?.dispose();
  });

  let n = 0;
  contract("redis notification state", () => ({
    // A fresh prefix per test, with the hash tag the store uses.
    state: createRedisNotificationState({ client, prefix: `{writ-t${++n}}` }),
    // Redis expires keys on its own clock: wait for it, within a bound.
    expire: async (ms) => {
      const until = Date.now() + ms;
      while (Date.now() < until) await client.ping();
    },
  }));

  it("keeps every key under the hash tag and expires facts", async () => {
    const state = createRedisNotificationState({ client, prefix: "{writ}" });
    await state.saveCursor("notify:slack", "1-0");
    await state.saveFacts("slack", "req_x", { a: "1" });
    await state.firstSeen("k", 60_000);
    await state.lease("notify:slack", "me", 60_000);
    const keys = await client.keys("*");
    expect(keys.filter((k) => k.startsWith("{writ}:notify:")).sort()).toEqual([
      "{writ}:notify:cursor:notify:slack",
      "{writ}:notify:facts:slack:req_x",
      "{writ}:notify:lease:notify:slack",
      "{writ}:notify:seen:k",
    ]);
    const ttl = await client.pTTL("{writ}:notify:facts:slack:req_x");
    expect(ttl).toBeGreaterThan(29 * 24 * 3600 * 1000);
  });

  it("fails within its deadline when Redis stops answering", async () => {
    const own = createClient({ url: server.url, commandOptions: { timeout: 0 } });
    await own.connect();
    const state = createRedisNotificationState({
      client: own,
      prefix: "{writ-frozen}",
      operationTimeoutMs: 200,
    });
    server.freeze();
    try {
      await expect(state.saveCursor("notify:slack", "1-0")).rejects.toMatchObject({
        name: "OperationTimeout",
      });
    } finally {
      server.thaw();
    }
    await state.saveCursor("notify:slack", "2-0");
    expect(await state.cursor("notify:slack")).toBe("2-0");
    await own.close();
  });
});
