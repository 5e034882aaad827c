import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { type DomainEvent, type EventType, NO_REQUEST } from "../../src/domain/events.js";
import { type Auditor, SYSTEM_ACTOR } from "../../src/domain/principal.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { recentActivity } from "../../src/service/activity.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";

const HOUR = 3_600_000;
const dana: Auditor = { kind: "auditor", id: "dana" };

const eventAt = (type: EventType, time: number): DomainEvent => ({
  type,
  requestId: NO_REQUEST,
  actor: SYSTEM_ACTOR,
  time,
  data: {},
});

describe("the console's activity chart on a long Redis stream", () => {
  /**
   * Older history than the chart shows: far shorter than a busy deployment's
   * few million events, so the store's deadline is shortened in proportion.
   * A read passing over this history takes seconds here.
   */
  const HISTORY = 300_000;
  const BATCH = 5_000;
  const DEADLINE_MS = 1_000;
  let server: RedisServer;
  let client: RedisStoreClient;
  let store: RedisStore;
  let t: TestWrit;

  beforeAll(async () => {
    server = await startRedisServer();
    client = await connectRedis({ url: server.url, logger: silentLogger });
    // The chart's store, which no audit log of the test writ follows: only
    // the read is measured, not a log catching up with the history.
    store = createRedisStore({
      client,
      prefix: "activity",
      logger: silentLogger,
      operationTimeoutMs: DEADLINE_MS,
    });
    t = await startTestWrit();
  });

  afterAll(async () => {
    await t?.close();
    await store?.close();
    await client?.close();
    await server?.dispose();
  });

  it("answers within the store's deadline, counting only the hours it shows", async () => {
    const now = t.clock.now();
    // Three days before now: issuance and denials the chart must not count.
    const old = now - 3 * 24 * HOUR;
    const appending = performance.now();
    for (let n = 0; n < HISTORY; n += BATCH) {
      await store.append(
        Array.from({ length: BATCH }, (_, i) =>
          eventAt(i % 2 === 0 ? "credential.issued" : "request.denied", old + n + i),
        ),
      );
    }
    expect(performance.now() - appending).toBeLessThan(30_000);
    // The last hours: many events, few of the kinds the chart counts.
    const recent = Array.from({ length: 2_000 }, (_, i) =>
      eventAt("token.used", now - 5 * HOUR + i * 1000),
    );
    recent[10] = eventAt("credential.issued", now - 5 * HOUR);
    recent[500] = eventAt("credential.issued", now - HOUR);
    recent[1_999] = eventAt("request.denied", now);
    await store.append(recent);

    const started = performance.now();
    const activity = await recentActivity({ ...t.writ.broker.deps, store }, dana, {
      buckets: 24,
      bucketMs: HOUR,
    });
    expect(performance.now() - started).toBeLessThan(DEADLINE_MS);
    expect(activity.issued.reduce((a, b) => a + b)).toBe(2);
    expect(activity.denied.reduce((a, b) => a + b)).toBe(1);
    expect(activity.denied[23]).toBe(1);
    expect(activity.capped).toBe(false);
  });
});

describe("recentActivity", () => {
  let t: TestWrit;
  let store: RequestStore;
  /** The use case's ports, on a store of this test's own. */
  const deps = () => ({ ...t.writ.broker.deps, store });
  /** The first hour the chart shows, of 24. */
  const windowStart = () => Math.ceil((t.clock.now() + 1) / HOUR) * HOUR - 24 * HOUR;

  beforeAll(async () => {
    t = await startTestWrit();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("counts events recorded a little out of time order, and stops reading well before the window", async () => {
    store = createMemoryStore();
    const start = windowStart();
    await store.append([
      // Far older, then recorded after it: past the stop, never read.
      eventAt("credential.issued", start + HOUR),
      eventAt("token.used", start - 60 * 60_000),
      // A replica whose clock is a minute slow records an event from before
      // the window after one inside it: reading goes on past it.
      eventAt("request.denied", start + 2 * 60_000),
      eventAt("token.used", start - 60_000),
      eventAt("credential.issued", start + 2 * HOUR),
      eventAt("credential.issued", start + 2 * HOUR + 1),
      eventAt("request.denied", start + 23 * HOUR),
      // Timed after now by a fast clock: in no hour shown.
      eventAt("credential.issued", start + 24 * HOUR),
    ]);
    const activity = await recentActivity(deps(), dana, { buckets: 24, bucketMs: HOUR });
    expect(activity.start).toBe(start);
    expect(activity.issued.reduce((a, b) => a + b)).toBe(2);
    expect(activity.issued[2]).toBe(2);
    expect(activity.denied[0]).toBe(1);
    expect(activity.denied[23]).toBe(1);
    expect(activity.capped).toBe(false);
  });

  it("caps what one view reads, and says its counts are lower bounds", async () => {
    store = createMemoryStore();
    const start = windowStart();
    for (let n = 0; n < 201_000; n += 10_000) {
      await store.append(
        Array.from({ length: 10_000 }, (_, i) => eventAt("credential.issued", start + n + i)),
      );
    }
    const activity = await recentActivity(deps(), dana, { buckets: 24, bucketMs: HOUR });
    expect(activity.capped).toBe(true);
    expect(activity.issued.reduce((a, b) => a + b)).toBe(200_000);
  });

  it("reads an empty stream as no activity", async () => {
    store = createMemoryStore();
    const activity = await recentActivity(deps(), dana, { buckets: 24, bucketMs: HOUR });
    expect(activity.issued).toEqual(new Array(24).fill(0));
    expect(activity.denied).toEqual(new Array(24).fill(0));
    expect(activity.capped).toBe(false);
  });
});
