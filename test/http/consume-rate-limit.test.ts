import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryRateLimiter } from "../../src/adapters/memory-rate-limiter.js";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createPrometheusMetrics } from "../../src/adapters/prometheus-metrics.js";
import { parseConfig } from "../../src/config/load.js";
import { openRedisBackend, type RedisBackend } from "../../src/config/wire-redis.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RateLimiter } from "../../src/ports/rate-limiter.js";
import {
  allEvents,
  collectToken,
  createRequest,
  expectError,
  issuedToken,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import { startRedisServer } from "../support/redis.js";

/** A token that was never issued: refused as `token_invalid`, recording nothing. */
const FORGED = "eyJhbGciOiJFZERTQSJ9.e30.c2ln";

const consume = (t: TestWrit, token: string, server = "billing-api") =>
  t.call("POST", "/v1/tokens/consume", { key: keyOf(t, server), body: { token } });

describe("per-resource-server limits on refused consumes", () => {
  const started: TestWrit[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((t) => t.close()));
  });

  it("answers 429 rate_limited with Retry-After once the burst of refusals is spent, recording nothing, and never limits a first use", async () => {
    const metrics = createPrometheusMetrics();
    const t = await startTestWrit(
      { rate_limits: { refusals_per_minute_per_resource_server: 2, refusal_burst: 2 } },
      { metrics },
    );
    started.push(t);
    const used = await issuedToken(t);
    expect((await consume(t, used.token)).status).toBe(200);
    await expectError(await consume(t, used.token), 409, "token_replayed");
    await expectError(await consume(t, used.token), 409, "token_replayed");
    const before = (await allEvents(t)).length;
    const res = await consume(t, used.token);
    const error = await expectError(res, 429, "rate_limited");
    // Two a minute: the next slot is 30 s away on the (frozen) clock.
    expect(res.headers.get("retry-after")).toBe("30");
    expect(error.details).toEqual({ retry_after_seconds: 30 });
    expect((await allEvents(t)).length).toBe(before);
    expect(metrics.render()).toMatch(/^writ_rate_limited_total 1$/m);
    metrics.close();

    // First uses go through, however many, and take nothing from the limit.
    for (let n = 0; n < 3; n++) {
      expect((await consume(t, (await issuedToken(t)).token)).status).toBe(200);
    }
    // Tokens never issued are recorded nowhere, and are not what the limit counts.
    await expectError(await consume(t, FORGED), 401, "token_invalid");
    t.clock.advance(30);
    await expectError(await consume(t, used.token), 409, "token_replayed");
    await expectError(await consume(t, used.token), 429, "rate_limited");
  });

  it("limits each resource server on its own, with per-id overrides, and never an agent's requests", async () => {
    const { overrides, keys } = extraIdentities({
      resource_servers: [{ id: "ledger-api", audience: "ledger-api" }],
    });
    const t = await startTestWrit({
      ...overrides,
      rate_limits: {
        requests_per_minute_per_agent: 100,
        burst: 100,
        refusals_per_minute_per_resource_server: 1,
        refusal_burst: 1,
        resource_servers: { "ledger-api": { refusals_per_minute: 60, burst: 5 } },
      },
    });
    started.push(t);
    Object.assign(t.keys, keys);
    const billing = await issuedToken(t);
    expect((await consume(t, billing.token)).status).toBe(200);
    await expectError(await consume(t, billing.token), 409, "token_replayed");
    await expectError(await consume(t, billing.token), 429, "rate_limited");
    const { id } = await createRequest(t, { ...S3_READ, audience: "ledger-api" });
    const ledger = { token: await collectToken(t, id) };
    expect((await consume(t, ledger.token, "ledger-api")).status).toBe(200);
    const replays = [];
    for (let n = 0; n < 8; n++) replays.push((await consume(t, ledger.token, "ledger-api")).status);
    expect(replays.filter((status) => status === 409)).toHaveLength(5);
    expect(replays.filter((status) => status === 429)).toHaveLength(3);
  });

  it("takes from the limit once per refused consume, also when the refusal is decided again on the stored state", async () => {
    const clock = new ManualClock();
    const takes: string[] = [];
    const limiter = createMemoryRateLimiter({
      limitFor: () => ({ perMinute: 1, burst: 2 }),
      clock,
    });
    const counting: RateLimiter = {
      take(subject) {
        takes.push(subject);
        return limiter.take(subject);
      },
    };
    // Two processes on one store: a remembers what it committed, b changes the
    // request after that, so a's remembered state is stale.
    const store = createMemoryStore();
    const a = await startTestWrit({}, { store, clock, consumeRateLimiter: counting });
    const b = await startTestWrit({}, { store, clock, consumeRateLimiter: counting });
    started.push(a, b);
    const { id, token } = await issuedToken(a);
    expect((await consume(a, token)).status).toBe(200);
    const complete = await b.call("POST", `/v1/requests/${id}/complete`, {
      key: keyOf(b, "report-agent"),
    });
    expect(complete.status).toBe(200);
    await expectError(await consume(a, token), 409, "token_replayed");
    expect(takes).toEqual(["billing-api"]);
    // The burst is two refusals: the second is recorded too, not limited.
    await expectError(await consume(a, token), 409, "token_replayed");
    expect(takes).toEqual(["billing-api", "billing-api"]);
  });

  it("holds one limit for a resource server across replicas on one Redis", async () => {
    const redis = await startRedisServer();
    const dirs: string[] = [];
    const backends: RedisBackend[] = [];
    try {
      const prefix = `t${randomBytes(6).toString("hex")}`;
      const config = parseConfig({
        redis: { url: redis.url, key_prefix: prefix },
        rate_limits: { refusals_per_minute_per_resource_server: 1, refusal_burst: 3 },
      });
      const replicas: TestWrit[] = [];
      // One signing key for both, as replicas share; each its own audit log.
      const shared = await mkdtemp(join(tmpdir(), "writ-replicas-"));
      dirs.push(shared);
      for (let i = 0; i < 2; i++) {
        const backend = await openRedisBackend(config, {}, { logger: silentLogger });
        backends.push(backend);
        const t = await startTestWrit(
          {
            data_dir: shared,
            audit: { dir: join(shared, `audit-${i}`) },
            rate_limits: config.rate_limits,
          },
          { store: backend.store, consumeRateLimiter: backend.consumeRateLimiter },
        );
        started.push(t);
        replicas.push(t);
      }
      const [a, b] = replicas as [TestWrit, TestWrit];
      const { token } = await issuedToken(a);
      expect((await consume(a, token)).status).toBe(200);
      const statuses = [];
      for (const t of [a, b, a, b, a]) statuses.push((await consume(t, token)).status);
      expect(statuses).toEqual([409, 409, 409, 429, 429]);
    } finally {
      await Promise.all(started.splice(0).map((t) => t.close()));
      await Promise.all(backends.map((backend) => backend.store.close()));
      await redis.dispose();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  });
});
