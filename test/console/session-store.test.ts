import { createHash } from "node:crypto";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisSessionStore,
  type SessionRedisClient,
} from "../../src/adapters/redis/console-sessions.js";
import { createSessionStore, type SessionStore } from "../../src/console/sessions.js";
import type { Reviewer } from "../../src/domain/principal.js";
import { ManualClock } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";

const bob: Reviewer = { kind: "reviewer", id: "bob", groups: ["data-owners"] };
const LIMITS = { idleTimeoutSeconds: 600, maxAgeSeconds: 3600 };
const TAG = "0123456789abcdef0123456789abcdef";

let redis: RedisServer;
let connection: ReturnType<typeof createClient>;
const client = (): SessionRedisClient => connection;

beforeAll(async () => {
  redis = await startRedisServer();
  connection = createClient({ url: redis.url });
  connection.on("error", () => {});
  await connection.connect();
});
afterAll(async () => {
  connection?.destroy();
  await redis?.dispose();
});

const stores: [string, (clock: ManualClock) => SessionStore][] = [
  ["in memory", (clock) => createSessionStore({ clock, ...LIMITS })],
  ["in Redis", (clock) => createRedisSessionStore({ client: client(), clock, ...LIMITS })],
];

describe.each(stores)("console sessions %s", (_, makeStore) => {
  it("hands back the session by its id, touched on every read", async () => {
    const clock = new ManualClock();
    const store = makeStore(clock);
    const { id, session } = await store.create(bob, TAG);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    clock.advance(30);
    const found = await store.get(id);
    expect(found).toMatchObject({ principal: bob, keyTag: TAG, csrfToken: session.csrfToken });
    expect(found?.createdAt).toBe(session.createdAt);
    expect(found?.lastSeenAt).toBe(clock.now());
  });

  it("knows nothing of unknown or malformed ids", async () => {
    const store = makeStore(new ManualClock());
    await store.create(bob, TAG);
    for (const id of ["", "x", "A".repeat(43), "A".repeat(44), `${"A".repeat(42)}!`]) {
      expect(await store.get(id)).toBeUndefined();
    }
    await store.destroy("not-an-id");
  });

  it("ends a session idle too long, or alive too long however busy", async () => {
    const clock = new ManualClock();
    const store = makeStore(clock);
    const idle = await store.create(bob, TAG);
    clock.advance(599);
    expect(await store.get(idle.id)).toBeDefined();
    clock.advance(600);
    expect(await store.get(idle.id)).toBeUndefined();
    // Still undefined after: the expired session is gone, not revived.
    expect(await store.get(idle.id)).toBeUndefined();

    const busy = await store.create(bob, TAG);
    for (let t = 0; t < 3600; t += 300) {
      expect(await store.get(busy.id)).toBeDefined();
      clock.advance(300);
    }
    expect(await store.get(busy.id)).toBeUndefined();
  });

  it("forgets a destroyed session", async () => {
    const store = makeStore(new ManualClock());
    const { id } = await store.create(bob, TAG);
    await store.destroy(id);
    expect(await store.get(id)).toBeUndefined();
  });
});

describe("console sessions in Redis", () => {
  it("are shared by every process: signed in on one, signed in on all", async () => {
    const clock = new ManualClock();
    const one = createRedisSessionStore({ client: client(), clock, ...LIMITS });
    const two = createRedisSessionStore({ client: client(), clock, ...LIMITS });
    const { id, session } = await one.create(bob, TAG);
    expect(await two.get(id)).toMatchObject({
      principal: bob,
      keyTag: TAG,
      csrfToken: session.csrfToken,
    });
    await two.destroy(id);
    expect(await one.get(id)).toBeUndefined();
  });

  it("are stored under the hash of their id, never the id, and expire in Redis too", async () => {
    const clock = new ManualClock();
    const store = createRedisSessionStore({ client: client(), clock, ...LIMITS });
    const { id } = await store.create(bob, TAG);
    const keys = await connection.keys("*console*");
    expect(keys.some((k) => k.includes(id))).toBe(false);
    const key = `{writ}:console:${createHash("sha256").update(id).digest("hex")}`;
    expect(keys).toContain(key);
    const ttl = Number(await connection.pTTL(key));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual((600 + 60) * 1000);
  });

  it("read a damaged record as no session", async () => {
    const clock = new ManualClock();
    const store = createRedisSessionStore({ client: client(), clock, ...LIMITS });
    const { id } = await store.create(bob, TAG);
    const key = `{writ}:console:${createHash("sha256").update(id).digest("hex")}`;
    for (const [field, value] of [
      ["p", "{not json"],
      ["p", JSON.stringify({ kind: "agent", id: "report-agent" })],
      ["p", JSON.stringify({ kind: "reviewer", id: "bob", groups: "data-owners" })],
      ["t0", "soon"],
    ] as const) {
      const fresh = await store.create(bob, TAG);
      const freshKey = `{writ}:console:${createHash("sha256").update(fresh.id).digest("hex")}`;
      await connection.hSet(freshKey, field, value);
      expect(await store.get(fresh.id), `${field}=${value}`).toBeUndefined();
    }
    expect(await store.get(id)).toBeDefined();
    expect(key).toMatch(/^\{writ\}:console:[0-9a-f]{64}$/);
  });

  it("read a record without a key tag (written before tags) as no session", async () => {
    const store = createRedisSessionStore({
      client: client(),
      clock: new ManualClock(),
      ...LIMITS,
    });
    const { id } = await store.create(bob, TAG);
    await connection.hDel(`{writ}:console:${createHash("sha256").update(id).digest("hex")}`, "k");
    expect(await store.get(id)).toBeUndefined();
  });

  it("answer store_unavailable when Redis does not answer, assuming no session", async () => {
    const clock = new ManualClock();
    const store = createRedisSessionStore({
      client: client(),
      clock,
      ...LIMITS,
      operationTimeoutMs: 200,
    });
    const { id } = await store.create(bob, TAG);
    redis.freeze();
    try {
      await expect(store.get(id)).rejects.toMatchObject({ code: "store_unavailable" });
      await expect(store.create(bob, TAG)).rejects.toMatchObject({ code: "store_unavailable" });
    } finally {
      redis.thaw();
    }
    expect(await store.get(id)).toBeDefined();
  });
});
