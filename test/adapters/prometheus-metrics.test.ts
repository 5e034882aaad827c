import { describe, expect, it } from "vitest";
import { createPrometheusMetrics, sumSnapshots } from "../../src/adapters/prometheus-metrics.js";
import type { RecordedEvent } from "../../src/domain/events.js";
import type { AccessRequest } from "../../src/domain/request.js";

const SYSTEM = { kind: "system", id: "writ" } as unknown as RecordedEvent["actor"];

function event(type: string, time: number, data: Record<string, unknown> = {}): RecordedEvent {
  return { id: "1-0", type, requestId: "req_x", actor: SYSTEM, time, data } as RecordedEvent;
}

const request = { createdAt: 1_000_000, credentialType: "jwt" } as AccessRequest;

/** The value of one sample line, e.g. `writ_decisions_total{effect="deny"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("Prometheus metrics", () => {
  it("renders valid exposition text: HELP and TYPE once per family, then samples", () => {
    const metrics = createPrometheusMetrics();
    metrics.observeHttp("/v1/requests", "POST", 201, 0.004);
    metrics.observeHttp("/v1/requests", "POST", 201, 0.02);
    const text = metrics.render();
    metrics.close();
    const families = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    expect(new Set(families).size).toBe(families.length);
    for (const line of text.trim().split("\n")) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) [a-z_0-9]+ .+|[a-z_0-9]+(\{[^}]*\})? [-+0-9.eInfNa]+)$/,
      );
    }
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="201"}'),
    ).toBe(2);
    expect(
      sample(text, 'writ_http_request_duration_seconds_bucket{route="/v1/requests",le="0.005"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_request_duration_seconds_bucket{route="/v1/requests",le="0.025"}'),
    ).toBe(2);
    expect(
      sample(text, 'writ_http_request_duration_seconds_bucket{route="/v1/requests",le="+Inf"}'),
    ).toBe(2);
    expect(sample(text, 'writ_http_request_duration_seconds_count{route="/v1/requests"}')).toBe(2);
  });

  it("counts decisions, reviewer approval latency, issuance, use and replays from events", () => {
    const metrics = createPrometheusMetrics();
    metrics.observeEvents(request, [
      event("request.created", 1_000_000),
      event("request.decided", 1_000_000, { effect: "approve" }),
    ]);
    metrics.observeEvents(request, [
      event("approval.granted", 1_042_000),
      event("request.approved", 1_042_000, { by: "reviewers" }),
    ]);
    // Approved by policy at once: not a human approval, not in the latency histogram.
    metrics.observeEvents(request, [
      event("request.decided", 1_000_000, { effect: "allow" }),
      event("request.approved", 1_000_000, { by: "policy" }),
    ]);
    metrics.observeEvents(request, [event("credential.issued", 1_050_000)]);
    metrics.observeEvents(request, [event("token.used", 1_051_000)]);
    metrics.observeEvents(request, [
      event("token.replay_blocked", 1_052_000),
      event("token.replay_blocked", 1_052_001),
    ]);
    const text = metrics.render();
    metrics.close();
    expect(sample(text, 'writ_decisions_total{effect="approve"}')).toBe(1);
    expect(sample(text, 'writ_decisions_total{effect="allow"}')).toBe(1);
    expect(sample(text, "writ_approval_latency_seconds_count")).toBe(1);
    expect(sample(text, "writ_approval_latency_seconds_sum")).toBe(42);
    expect(sample(text, 'writ_approval_latency_seconds_bucket{le="30"}')).toBe(0);
    expect(sample(text, 'writ_approval_latency_seconds_bucket{le="60"}')).toBe(1);
    expect(sample(text, 'writ_credentials_issued_total{type="jwt"}')).toBe(1);
    expect(sample(text, "writ_tokens_used_total")).toBe(1);
    expect(sample(text, "writ_token_replays_blocked_total")).toBe(2);
    expect(sample(text, 'writ_events_total{type="token.replay_blocked"}')).toBe(2);
  });

  it("keeps labels bounded: unknown methods, statuses, operations and effects fold to other", () => {
    const metrics = createPrometheusMetrics();
    metrics.observeHttp("/v1/requests", "BREW", 999, 0.001);
    metrics.countRedisError("FLUSHALL; evil");
    metrics.observeEvents(request, [event("request.decided", 0, { effect: "maybe\n" })]);
    const text = metrics.render();
    metrics.close();
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="other",status="other"}'),
    ).toBe(1);
    expect(sample(text, 'writ_redis_errors_total{operation="other"}')).toBe(1);
    expect(sample(text, 'writ_decisions_total{effect="other"}')).toBe(1);
  });

  it("stops growing a family at its series limit and escapes label values", () => {
    const metrics = createPrometheusMetrics();
    for (let i = 0; i < 5000; i++) metrics.observeHttp(`/route/${i}`, "GET", 200, 0.001);
    metrics.observeHttp('a"b\\c\nd', "GET", 200, 0.001);
    const text = metrics.render();
    metrics.close();
    const series = text.split("\n").filter((l) => l.startsWith("writ_http_requests_total{"));
    expect(series.length).toBeLessThanOrEqual(2001);
    expect(
      sample(text, 'writ_http_requests_total{route="other",method="other",status="other"}'),
    ).toBe(3001);
    const fresh = createPrometheusMetrics();
    fresh.observeHttp('a"b\\c\nd', "GET", 200, 0.001);
    expect(fresh.render()).toContain('route="a\\"b\\\\c\\nd"');
    fresh.close();
  });

  it("sums workers' snapshots into one exposition: counters, histograms, gauges per worker", () => {
    const primary = createPrometheusMetrics();
    const workers = [createPrometheusMetrics(), createPrometheusMetrics()];
    primary.observeEvents(request, [event("token.used", 1)]);
    workers[0]?.observeHttp("/v1/requests", "POST", 201, 0.004);
    workers[1]?.observeHttp("/v1/requests", "POST", 201, 0.02);
    workers[1]?.observeHttp("/v1/requests", "POST", 429, 0.001);
    workers[1]?.observeEvents(request, [event("token.used", 2), event("token.used", 3)]);
    // A snapshot travels between processes as JSON.
    const snapshots = new Map(
      workers.map((w, i) => [String(i + 1), JSON.parse(JSON.stringify(w.snapshot()))]),
    );
    const text = primary.render(snapshots);
    for (const m of [primary, ...workers]) m.close();
    const families = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    expect(new Set(families).size).toBe(families.length);
    expect(sample(text, "writ_tokens_used_total")).toBe(3);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="201"}'),
    ).toBe(2);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="429"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_request_duration_seconds_bucket{route="/v1/requests",le="0.005"}'),
    ).toBe(2);
    expect(sample(text, 'writ_http_request_duration_seconds_count{route="/v1/requests"}')).toBe(3);
    for (const worker of ["1", "2"]) {
      expect(sample(text, `process_resident_memory_bytes{worker="${worker}"}`)).toBeGreaterThan(0);
    }
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("sums snapshots counted without gauges: workers that exited, summed into one", () => {
    const primary = createPrometheusMetrics();
    const workers = [createPrometheusMetrics(), createPrometheusMetrics()];
    workers[0]?.observeHttp("/v1/requests", "POST", 201, 0.004);
    workers[1]?.observeHttp("/v1/requests", "POST", 201, 0.02);
    workers[1]?.observeHttp("/v1/requests", "POST", 429, 0.001);
    workers[1]?.observeEvents(request, [event("token.used", 2)]);
    const [first, second] = workers.map((w) => JSON.parse(JSON.stringify(w.snapshot())));
    const text = primary.render(new Map(), [sumSnapshots(first, second)]);
    for (const m of [primary, ...workers]) m.close();
    expect(sample(text, "writ_tokens_used_total")).toBe(1);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="201"}'),
    ).toBe(2);
    expect(
      sample(text, 'writ_http_requests_total{route="/v1/requests",method="POST",status="429"}'),
    ).toBe(1);
    expect(
      sample(text, 'writ_http_request_duration_seconds_bucket{route="/v1/requests",le="0.005"}'),
    ).toBe(2);
    expect(
      sample(text, 'writ_http_request_duration_seconds_sum{route="/v1/requests"}'),
    ).toBeCloseTo(0.025);
    expect(sample(text, 'writ_http_request_duration_seconds_count{route="/v1/requests"}')).toBe(3);
    expect(text).not.toContain("worker=");
  });

  it("skips series of a snapshot that do not fit the family", () => {
    const primary = createPrometheusMetrics();
    const odd = {
      families: {
        writ_tokens_used_total: [{ labels: { extra: "x" }, n: 5 }],
        writ_http_request_duration_seconds: [
          { labels: { route: "/x" }, counts: [1], sum: 1, count: 1 },
        ],
      },
      process: { residentBytes: 1, heapUsedBytes: 1, loopDelayP99Seconds: 0 },
    };
    const text = primary.render(new Map([["1", odd]]));
    primary.close();
    expect(sample(text, "writ_tokens_used_total")).toBe(0);
    expect(text).not.toContain('route="/x",le="0.001"} 1');
  });
});
