import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  createPrometheusMetrics,
  PROMETHEUS_CONTENT_TYPE,
  type PrometheusMetrics,
} from "../../src/adapters/prometheus-metrics.js";
import { createMetricsApp } from "../../src/http/metrics.js";
import {
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics of a running writ", () => {
  let t: TestWrit | undefined;
  let metrics: PrometheusMetrics;
  afterEach(async () => {
    await t?.close();
    metrics.close();
  });

  it("labels requests by route template, never by raw path or id", async () => {
    metrics = createPrometheusMetrics();
    t = await startTestWrit({}, { metrics });
    const agent = keyOf(t, "report-agent");
    const { id } = await createRequest(t, S3_READ);
    await t.call("GET", `/v1/requests/${id}`, { key: agent });
    await t.call("GET", "/v1/requests/req_AAAAAAAAAAAAAAAAAAAAAA", { key: agent });
    await t.call("GET", "/v1/no/such/route/../../etc/passwd", { key: agent });
    await t.call("GET", `/${"x".repeat(2000)}`);
    await t.call("POST", "/v1/requests", { key: "wrong", body: S3_READ });
    const text = metrics.render();
    expect(text).not.toContain(id);
    expect(text).not.toContain("passwd");
    expect(text).not.toContain("xxxx");
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests/:id",method="GET",status="200"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests/:id",method="GET",status="404"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="201"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="401"}'),
    ).toBe(1);
    const routes = new Set(
      [...text.matchAll(/^writ_http_requests_total\{route="([^"]*)"/gm)].map((m) => m[1]),
    );
    // Unmatched paths land on the catch-all a middleware was mounted on: a fixed, small set.
    expect(routes.size).toBeLessThanOrEqual(5);
  });

  it("counts decisions, approvals, issuance, use and replays as they happen", async () => {
    metrics = createPrometheusMetrics();
    t = await startTestWrit({}, { metrics });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(90);
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    const token = await collectToken(t, id);
    const server = keyOf(t, "billing-api");
    await t.call("POST", "/v1/tokens/consume", { key: server, body: { token } });
    await t.call("POST", "/v1/tokens/consume", { key: server, body: { token } });
    await t.call("POST", "/v1/requests", {
      key: keyOf(t, "report-agent"),
      body: { ...S3_READ, action: "iam:AttachRolePolicy" },
    });
    const text = metrics.render();
    expect(sample(text, 'writ_decisions_total{effect="approve"}')).toBe(1);
    expect(sample(text, 'writ_decisions_total{effect="deny"}')).toBe(1);
    expect(sample(text, "writ_approval_latency_seconds_count")).toBe(1);
    expect(sample(text, "writ_approval_latency_seconds_sum")).toBe(90);
    expect(sample(text, 'writ_credentials_issued_total{type="jwt"}')).toBe(1);
    expect(sample(text, "writ_tokens_used_total")).toBe(1);
    expect(sample(text, "writ_token_replays_blocked_total")).toBe(1);
  });
});

describe("the /metrics listener", () => {
  const token = "writ_metrics_test-token-0123456789abcdefghijklmnopqrstuv";
  const app = createMetricsApp({
    render: () => "writ_up 1\n",
    contentType: PROMETHEUS_CONTENT_TYPE,
    tokenSha256: createHash("sha256").update(token).digest("hex"),
  });

  it("serves the text format to a scraper holding the token", async () => {
    const res = await app.request("/metrics", { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.text()).toBe("writ_up 1\n");
  });

  it("reads the scheme in any case (RFC 9110), the token exactly", async () => {
    for (const authorization of [`bearer ${token}`, `BEARER ${token}`]) {
      const res = await app.request("/metrics", { headers: { authorization } });
      expect(res.status, authorization.slice(0, 8)).toBe(200);
    }
    for (const authorization of [`Bearer  ${token}`, `Bearer ${token.toUpperCase()}`]) {
      const res = await app.request("/metrics", { headers: { authorization } });
      expect(res.status, authorization.slice(0, 8)).toBe(401);
    }
  });

  it("refuses a missing, wrong, malformed or oversized token", async () => {
    for (const authorization of [
      undefined,
      "Bearer nope",
      `Bearer ${token}x`,
      `Basic ${token}`,
      `Bearer ${"a".repeat(10_000)}`,
      `Bearer ${token.slice(0, -1)}`,
      "Bearer tok en",
    ]) {
      const res = await app.request("/metrics", {
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(res.status, authorization?.slice(0, 20)).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(await res.text()).not.toContain("writ_up");
    }
  });

  it("serves nothing else: the API, other paths and methods are not there", async () => {
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/v1/requests"],
      ["GET", "/metrics/../v1/events"],
      ["POST", "/metrics"],
      ["DELETE", "/metrics"],
    ] as const) {
      const res = await app.request(path, {
        method,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
  });

  it("is open without a token (it then listens on loopback only; see the config checks)", async () => {
    const open = createMetricsApp({ render: () => "x 1\n", contentType: PROMETHEUS_CONTENT_TYPE });
    expect((await open.request("/metrics")).status).toBe(200);
  });
});
