import { afterEach, describe, expect, it } from "vitest";
import { createPrometheusMetrics } from "../../src/adapters/prometheus-metrics.js";
import { allEvents, expectError, keyOf, S3_READ } from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type LoopbackIssuer, startOidcIssuer } from "../support/oidc-issuer.js";

describe("per-agent rate limits on POST /v1/requests", () => {
  let t: TestWrit | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("answers 429 rate_limited with Retry-After once the burst is spent, and records nothing", async () => {
    const metrics = createPrometheusMetrics();
    t = await startTestWrit(
      { rate_limits: { requests_per_minute_per_agent: 2, burst: 3 } },
      { metrics },
    );
    const agent = keyOf(t, "report-agent");
    for (let i = 0; i < 3; i++) {
      const res = await t.call("POST", "/v1/requests", { key: agent, body: S3_READ });
      expect(res.status).toBe(201);
    }
    const before = (await allEvents(t)).length;
    const res = await t.call("POST", "/v1/requests", { key: agent, body: S3_READ });
    const error = await expectError(res, 429, "rate_limited");
    // Two a minute: the next slot is 30 s away on the (frozen) clock.
    expect(res.headers.get("retry-after")).toBe("30");
    expect(error.details).toEqual({ retry_after_seconds: 30 });
    expect((await allEvents(t)).length).toBe(before);
    expect(metrics.render()).toMatch(/^writ_rate_limited_total 1$/m);
    metrics.close();

    // Time passes on the injected clock: one slot opens, not two.
    t.clock.advance(30);
    expect((await t.call("POST", "/v1/requests", { key: agent, body: S3_READ })).status).toBe(201);
    await expectError(
      await t.call("POST", "/v1/requests", { key: agent, body: S3_READ }),
      429,
      "rate_limited",
    );
  });

  it("limits each agent on its own, with per-agent overrides", async () => {
    const { overrides, keys } = extraIdentities({
      agents: [
        { id: "batch-agent", owner: "bob" },
        { id: "quiet-agent", owner: "bob" },
      ],
    });
    t = await startTestWrit({
      ...overrides,
      rate_limits: {
        requests_per_minute_per_agent: 1,
        burst: 1,
        agents: { "batch-agent": { requests_per_minute: 60, burst: 5 } },
      },
    });
    Object.assign(t.keys, keys);
    const create = (id: string) =>
      (t as TestWrit).call("POST", "/v1/requests", {
        key: keyOf(t as TestWrit, id),
        body: S3_READ,
      });
    expect((await create("report-agent")).status).toBe(201);
    expect((await create("report-agent")).status).toBe(429);
    expect((await create("quiet-agent")).status).toBe(201);
    const batch = await Promise.all(Array.from({ length: 8 }, () => create("batch-agent")));
    expect(batch.filter((r) => r.status === 201)).toHaveLength(5);
    expect(batch.filter((r) => r.status === 429)).toHaveLength(3);
  });

  it("takes a per-agent override for a workload-identity agent, by its mapped id", async () => {
    let now = () => Date.now();
    const github: LoopbackIssuer = await startOidcIssuer({ now: () => now() });
    try {
      t = await startTestWrit({
        identities: {
          oidc: [
            {
              issuer: github.issuer,
              audience: "writ-test",
              agent: { id: "gh:{repository}", owner: "{actor}" },
              require: { repository_owner: "acme" },
            },
          ],
        },
        rate_limits: {
          requests_per_minute_per_agent: 1,
          burst: 1,
          agents: { "gh:acme/nightly-export": { requests_per_minute: 60, burst: 3 } },
        },
      });
      const writ = t;
      now = () => writ.clock.now();
      const token = (repository: string) =>
        github.sign({ aud: "writ-test", repository, repository_owner: "acme", actor: "bob" });
      const create = async (repository: string) =>
        writ.call("POST", "/v1/requests", { key: await token(repository), body: S3_READ });
      const nightly = [];
      for (let i = 0; i < 4; i++) nightly.push((await create("acme/nightly-export")).status);
      expect(nightly).toEqual([201, 201, 201, 429]);
      // Another workload of the same issuer keeps the default limit.
      expect((await create("acme/reports")).status).toBe(201);
      expect((await create("acme/reports")).status).toBe(429);
    } finally {
      await github.close();
    }
  });

  it("never limits calls that are refused before the limit (bad input, other kinds)", async () => {
    t = await startTestWrit({ rate_limits: { requests_per_minute_per_agent: 1, burst: 1 } });
    const agent = keyOf(t, "report-agent");
    // Malformed bodies and a missing audience do not spend the agent's budget.
    for (const body of ["{", { action: "" }, { ...S3_READ, audience: undefined }]) {
      const res = await t.call("POST", "/v1/requests", { key: agent, body });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(429);
    }
    expect((await t.call("POST", "/v1/requests", { key: agent, body: S3_READ })).status).toBe(201);
  });

  it("is off when requests_per_minute_per_agent is 0", async () => {
    t = await startTestWrit({ rate_limits: { requests_per_minute_per_agent: 0, burst: 1 } });
    const agent = keyOf(t, "report-agent");
    const results = await Promise.all(
      Array.from({ length: 150 }, () =>
        (t as TestWrit).call("POST", "/v1/requests", { key: agent, body: S3_READ }),
      ),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
  });
});
