import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import type { DomainEvent, EventType, RecordedEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { type EventPage, expectJson, keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { waitFor } from "../support/wait.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");
const REQUEST = `req_${"R".repeat(22)}`;
/**
 * Blocked replays of one request's token: a resource server retrying a used
 * token in a loop records one a try. The store's deadline is cut down to 1 s
 * with them: read one by one, they take well past it, as a few hundred
 * thousand take past the default 5 s.
 */
const REPLAYS = 40_000;
const DEADLINE_MS = 1000;

let redis: RedisServer;
let client: RedisStoreClient;
let store: RequestStore;
let t: TestWrit;
let issued: RecordedEvent | undefined;

const event = (type: EventType, i: number): DomainEvent => ({
  type,
  requestId: REQUEST,
  actor: { kind: "resource_server", id: "billing-api" },
  time: T0 + i,
  data: {},
});

beforeAll(async () => {
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
  store = createRedisStore({
    client,
    prefix: "busy",
    logger: silentLogger,
    operationTimeoutMs: DEADLINE_MS,
  });
  [issued] = await store.append([event("credential.issued", 0)]);
  for (let start = 0; start < REPLAYS; start += 1000) {
    await store.append(
      Array.from({ length: 1000 }, (_, i) => event("token.replay_blocked", start + i + 1)),
    );
  }
  t = await startTestWrit({}, { store });
  await waitFor(
    "the audit log to copy the stream",
    async () => (t.writ.auditFile?.lastSeq() ?? 0) > REPLAYS,
    30_000,
  );
}, 60_000);

afterAll(async () => {
  await t?.close();
  await client?.close();
  await redis?.dispose();
});

describe("GET /v1/events of one request with many events", () => {
  it("answers a filter by type within the deadline, and following next finds every match once", async () => {
    const ids: string[] = [];
    let after: string | undefined;
    for (let calls = 0; calls < 100; calls++) {
      const started = performance.now();
      const res = await t.writ.app.request(
        `/v1/events?request_id=${REQUEST}&type=credential.issued&limit=10${after !== undefined ? `&after=${after}` : ""}`,
        { headers: { authorization: `Bearer ${keyOf(t, "dana")}` } },
      );
      const page = await expectJson<EventPage>(res, 200);
      expect(performance.now() - started).toBeLessThan(DEADLINE_MS);
      ids.push(...page.items.map((e) => e.id));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(ids).toEqual([issued?.id]);
  }, 60_000);
});
