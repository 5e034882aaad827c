import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import type { DomainEvent, EventType } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { type EventPage, expectJson, keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";
import { waitFor } from "../support/wait.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");
/** Entries already in the stream, none of them matching: just under one call's scan budget. */
const BACKLOG = 19_000;
/** Events that do not match, appended one at a time while the long-poll waits. */
const TRICKLE = 60;

let redis: RedisServer;
let client: RedisStoreClient;
let store: RequestStore;
let t: TestWrit;
let appended = 0;

function event(type: EventType): DomainEvent {
  const i = appended++;
  return {
    type,
    requestId: `req_${String(i % 1000).padStart(22, "A")}`,
    actor: { kind: "resource_server", id: "billing-api" },
    time: T0 + i,
    data: { jti: `jti_${i}` },
  };
}

/** How many XRANGE commands the Redis server has run so far. */
async function xrangeCalls(): Promise<number> {
  const info = String(await redisCommand(redis.url, ["INFO", "commandstats"]));
  const calls = /^cmdstat_xrange:calls=(\d+)/m.exec(info)?.[1];
  return Number(calls ?? 0);
}

beforeAll(async () => {
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
  store = createRedisStore({ client, prefix: "cost", logger: silentLogger });
  for (let start = 0; start < BACKLOG; start += 1000) {
    await store.append(Array.from({ length: 1000 }, () => event("token.used")));
  }
  t = await startTestWrit({}, { store });
  // The audit log copies the backlog first: let it, so that only the long-poll reads below.
  await waitFor(
    "the audit log to copy the stream",
    async () => (t.writ.auditFile?.lastSeq() ?? 0) >= BACKLOG,
    30_000,
  );
}, 60_000);

afterAll(async () => {
  await t?.close();
  await client?.close();
  await redis?.dispose();
});

describe("a filtered long-poll of GET /v1/events on a busy stream", () => {
  it("reads each entry about once while it waits, never the whole range again for each event that does not match", async () => {
    const before = await xrangeCalls();
    const response = Promise.resolve(
      t.writ.app.request("/v1/events?type=token.replay_blocked&wait=20&limit=10", {
        headers: { authorization: `Bearer ${keyOf(t, "dana")}` },
      }),
    );
    for (let i = 0; i < TRICKLE; i++) {
      await store.append([event("token.used")]);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const [match] = await store.append([event("token.replay_blocked")]);
    const page = await expectJson<EventPage>(await response, 200);
    expect(page.items.map((e) => e.id)).toEqual([match?.id]);
    // The first read scans the backlog (38 XRANGE calls of 500 entries); every
    // later one only the few entries appended since the read before it (the
    // audit log and notification workers read those too). A read from the
    // start again at each wake-up costs the 38 calls every time.
    const calls = (await xrangeCalls()) - before;
    expect(calls).toBeLessThan(200);
  }, 30_000);
});
