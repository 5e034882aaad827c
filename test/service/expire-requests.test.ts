import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createPrometheusMetrics } from "../../src/adapters/prometheus-metrics.js";
import { createRedisStore } from "../../src/adapters/redis-store.js";
import { WritError } from "../../src/domain/errors.js";
import type { AuditLog } from "../../src/ports/audit-log.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { Timer } from "../../src/ports/timer.js";
import { createBroker } from "../../src/service/broker.js";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  createRequest,
  expectJson,
  keyOf,
  readRequest,
} from "../support/api.js";
import { REVOCATIONS, startReportsAwsWrit } from "../support/aws-writ.js";
import { capturingLogger } from "../support/captured-log.js";
import type { FakeAws } from "../support/fake-aws.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import { redisWithPlainClientPerSuite } from "../support/redis.js";

// The expiry sweep, when the audit log does not confirm the expiry in time:
// the expiry is committed all the same, so what follows it must happen too.

const TTL_SECONDS = 300;

const clock = new ManualClock();
/** Background retries move the injected clock instead of waiting. */
const timer: Timer = {
  sleep(ms) {
    clock.advance(ms / 1000);
    return Promise.resolve();
  },
};

let fake: FakeAws;
let t: TestWrit;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ fake, t, close } = await startReportsAwsWrit({ clock }));
});

afterAll(async () => {
  await close?.();
});

/**
 * The writ's audit log, except that the first append holding `type` times out,
 * as the log's follower does when its disk stalls: the log stays writable and
 * records the events late, from the stream.
 */
function stallingOnce(log: AuditLog, type: string): AuditLog {
  let stalled = false;
  return {
    append(events) {
      if (!stalled && events.some((e) => e.type === type)) {
        stalled = true;
        return Promise.reject(
          new WritError("audit_unavailable", "The audit log did not record the change in time."),
        );
      }
      return log.append(events);
    },
    writable: () => log.writable(),
    close: () => log.close(),
  };
}

async function waitForEvent(id: string, type: string) {
  const query = new URLSearchParams({ request_id: id, type, wait: "3" });
  const page = await expectJson<{ items: { type: string; data: Record<string, unknown> }[] }>(
    await t.call("GET", `/v1/events?${query}`, { key: keyOf(t, "dana") }),
    200,
  );
  return page.items[0];
}

describe("expireDue", () => {
  it("ends an expired AWS session at its source even when the log confirms the expiry late", async () => {
    const key = keyOf(t, "report-agent");
    const { id } = await expectJson<{ id: string }>(
      await t.call("POST", "/v1/requests", {
        key,
        body: { credential: "aws", action: "s3:GetObject", resource: "arn:aws:s3:::reports/q.csv" },
      }),
      201,
    );
    await expectJson(await t.call("POST", `/v1/requests/${id}/credential`, { key }), 200);
    const grant = fake.sessions.at(-1)?.tags["writ-grant"];
    expect(grant).toBeDefined();

    const broker = createBroker({
      ...t.writ.broker.deps,
      timer,
      auditLog: stallingOnce(t.writ.broker.deps.auditLog, "credential.expired"),
    });
    clock.advance(TTL_SECONDS + 1);
    await expect(broker.expireDue()).rejects.toMatchObject({ code: "audit_unavailable" });

    // The expiry is committed; nothing will ever settle this request again.
    expect((await readRequest(t, id)).status).toBe("expired");
    const revoked = await waitForEvent(id, "credential.revoked");
    expect(revoked?.data).toMatchObject({
      reason: "expired",
      at_source: "aws-iam",
      grant_id: grant,
    });
    expect(fake.rolePolicy("writ-reports", REVOCATIONS)).toContain(grant);
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types.slice(-2)).toEqual(["credential.expired", "credential.revoked"]);
  });
});

describe("expireDue past stale entries in the Redis due index", () => {
  const redis = redisWithPlainClientPerSuite();
  let writ: TestWrit;
  let prefix: string;

  beforeEach(async () => {
    prefix = `exp${randomBytes(6).toString("hex")}`;
    const store = createRedisStore({ client: redis.client, prefix, logger: silentLogger });
    writ = await startTestWrit({}, { store });
  });

  afterEach(async () => {
    await writ?.close();
  });

  const dueIndex = () => `{${prefix}}:due`;

  it("expires the requests behind a full batch of entries of decided requests, and drops those", async () => {
    const denied: string[] = [];
    for (let n = 0; n < 3; n++) {
      const { id } = await createRequest(writ, CUSTOMERS_EXPORT);
      await expectJson(
        await writ.call("POST", `/v1/requests/${id}/deny`, {
          key: keyOf(writ, "bob"),
          body: { reason: "no" },
        }),
        200,
      );
      // Left behind as a hand edit or a restore leaves it.
      await redis.raw.zAdd(dueIndex(), { score: 1, value: id });
      denied.push(id);
    }
    const { id } = await createRequest(writ, CUSTOMERS_EXPORT);
    writ.clock.advance(3600);
    expect(await writ.writ.broker.expireDue(2)).toBe(1);
    expect(await allEvents(writ, { request_id: id, type: "request.expired" })).toHaveLength(1);
    for (const decided of denied) expect((await readRequest(writ, decided)).status).toBe("denied");
    expect(await redis.raw.zRange(dueIndex(), 0, -1)).toEqual([]);
  });

  it("expires the other requests past one whose record cannot be read, and names it in the log", async () => {
    const { logger, lines } = capturingLogger();
    const metrics = createPrometheusMetrics();
    await writ.close();
    writ = await startTestWrit(
      {},
      { store: createRedisStore({ client: redis.client, prefix, logger }), logger, metrics },
    );
    // A record writ cannot read (a hand edit gone wrong), due before the others.
    const unreadable = "req_AAAAAAAAAAAAAAAAAAAAAA";
    await redis.raw.hSet(`{${prefix}}:req:${unreadable}`, { d: "{not json", v: "1", s: "pending" });
    await redis.raw.zAdd(dueIndex(), { score: 1, value: unreadable });
    const { id } = await createRequest(writ, CUSTOMERS_EXPORT);
    writ.clock.advance(3600);

    await expect(writ.writ.broker.expireDue()).rejects.toMatchObject({
      code: "store_unavailable",
    });

    expect(await allEvents(writ, { request_id: id, type: "request.expired" })).toHaveLength(1);
    expect((await readRequest(writ, id)).status).toBe("expired");
    // The unreadable one stays unreadable, and in the index for the next sweep.
    const read = await writ.call("GET", `/v1/requests/${unreadable}`, {
      key: keyOf(writ, "dana"),
    });
    expect(read.status).toBe(503);
    expect(await redis.raw.zRange(dueIndex(), 0, -1)).toEqual([unreadable]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        fields: expect.objectContaining({ request_id: unreadable, code: "store_unavailable" }),
      }),
    );
    expect(metrics.render()).toMatch(/^writ_redis_errors_total\{operation="get"\} [1-9]/m);
  });

  it("passes over an entry whose request no longer exists", async () => {
    await redis.raw.zAdd(dueIndex(), { score: 1, value: "req_AAAAAAAAAAAAAAAAAAAAAA" });
    const { id } = await createRequest(writ, CUSTOMERS_EXPORT);
    writ.clock.advance(3600);
    expect(await writ.writ.broker.expireDue()).toBe(1);
    expect(await allEvents(writ, { request_id: id, type: "request.expired" })).toHaveLength(1);
    expect(await redis.raw.zRange(dueIndex(), 0, -1)).toEqual([]);
  });
});
