import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import type { DomainEvent, RecordedEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { type EventPage, expectJson, keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");
const REQUEST = `req_${"C".repeat(22)}`;
/**
 * Blocked replays of one request's token (a resource server retrying a used
 * token records one a try). Reading on from a cursor deep among them must cost
 * the page read, not every id before the cursor: paging through them all would
 * otherwise cost the square of their number.
 */
const REPLAYS = 20_000;

let redis: RedisServer;
let client: RedisStoreClient;
let store: RequestStore;
let t: TestWrit;
const recorded: RecordedEvent[] = [];

const event = (i: number): DomainEvent => ({
  type: "token.replay_blocked",
  requestId: REQUEST,
  actor: { kind: "resource_server", id: "billing-api" },
  time: T0 + i,
  data: { n: i },
});

/** How many times the Redis server has run each list read so far. */
async function listReads(): Promise<number> {
  const info = String(await redisCommand(redis.url, ["INFO", "commandstats"]));
  let calls = 0;
  for (const command of ["lrange", "lindex", "lpos", "llen"]) {
    calls += Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info)?.[1] ?? 0);
  }
  return calls;
}

beforeAll(async () => {
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
  store = createRedisStore({ client, prefix: "cursor", logger: silentLogger });
  for (let start = 0; start < REPLAYS; start += 1000) {
    recorded.push(
      ...(await store.append(Array.from({ length: 1000 }, (_, i) => event(start + i)))),
    );
  }
  t = await startTestWrit({}, { store });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await client?.close();
  await redis?.dispose();
});

describe("GET /v1/events of one request after a cursor deep in its events", () => {
  it("starts at the cursor with a few list reads, never a walk over every id before it", async () => {
    for (const at of [REPLAYS - 100, REPLAYS / 2, 5]) {
      const after = recorded[at - 1]?.id as string;
      const before = await listReads();
      const res = await t.writ.app.request(
        `/v1/events?request_id=${REQUEST}&after=${after}&limit=50`,
        { headers: { authorization: `Bearer ${keyOf(t, "dana")}` } },
      );
      const page = await expectJson<EventPage>(res, 200);
      expect(page.items.map((e) => e.id)).toEqual(recorded.slice(at, at + 50).map((e) => e.id));
      // A binary search over the list costs about log2(20,000) reads; walking
      // it from the start costs one read of 500 ids per 500 ids passed over.
      expect(await listReads(), `after event ${at}`).toBeLessThan(before + 25);
    }
  }, 60_000);
});
