import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMERS_EXPORT, S3_READ } from "../support/api.js";
import type { RedisServer } from "../support/redis.js";
import type { WritProcess } from "../support/writ-process.js";
import { allEvents, call, type ReplicaPair, startReplicaPair, tally } from "./http.js";

// Two `writ serve` processes, each with its own data dir (as on two hosts), on
// one real redis-server with the AOF settings of infra/redis/redis.conf, driven
// over HTTP. Durability under SIGKILL is in redis-kill.test.ts.

let pair: ReplicaPair;
let redis: RedisServer;
let a: WritProcess;
let b: WritProcess;
const replicas = () => [a, b] as const;
/** Alternates between the replicas, so that concurrent calls land on both. */
const pick = (n: number) => (n % 2 === 0 ? a : b);
const key = (id: string) => pair.key(id);

beforeAll(async () => {
  pair = await startReplicaPair("writ-replicas-", { appendOnly: "shipped" });
  ({ redis, a, b } = pair);
}, 60_000);

afterAll(async () => {
  // A graceful stop exits 0: in-flight work drained, the log closed.
  expect(await pair?.stop()).toEqual([0, 0]);
}, 60_000);

async function create(on: WritProcess, body: Record<string, unknown>, agent = "report-agent") {
  const res = await call<{ id: string; status: string }>(
    on.url,
    "POST",
    "/v1/requests",
    key(agent),
    body,
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function collect(on: WritProcess, id: string) {
  const res = await call<{ credential: { token: string } }>(
    on.url,
    "POST",
    `/v1/requests/${id}/credential`,
    key("report-agent"),
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.credential.token;
}

const review = (on: WritProcess, reviewer: string, id: string, verdict: "approve" | "deny") =>
  call(
    on.url,
    "POST",
    `/v1/requests/${id}/${verdict}`,
    key(reviewer),
    verdict === "approve" ? {} : { reason: "not now" },
  );

const eventsOf = (id: string) => allEvents(a.url, key("dana"), { request_id: id });
const count = (events: { type: string }[], type: string) =>
  events.filter((e) => e.type === type).length;

describe("exactly once across two replicas", () => {
  it("1,000 concurrent consumes of one token: one success, 999 replays, each recorded once", async () => {
    const { id } = await create(a, S3_READ);
    const token = await collect(b, id);
    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        call(pick(i).url, "POST", "/v1/tokens/consume", key("billing-api"), { token }),
      ),
    );
    expect(tally(answers)).toEqual({
      statuses: { 200: 1, 409: 999 },
      codes: { token_replayed: 999 },
    });
    const events = await eventsOf(id);
    expect(count(events, "token.used")).toBe(1);
    expect(count(events, "token.replay_blocked")).toBe(999);
  });

  it("200 concurrent collects of one approved request: one credential, one record", async () => {
    const { id } = await create(b, S3_READ);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        call<{ credential?: { token: string } }>(
          pick(i).url,
          "POST",
          `/v1/requests/${id}/credential`,
          key("report-agent"),
        ),
      ),
    );
    expect(tally(answers)).toEqual({
      statuses: { 200: 1, 410: 199 },
      codes: { credential_already_issued: 199 },
    });
    const issued = (await eventsOf(id)).filter((e) => e.type === "credential.issued");
    expect(issued).toHaveLength(1);
    const token = answers.find((x) => x.status === 200)?.body.credential?.token as string;
    const jti = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()).jti;
    expect(issued[0]?.data.credential_id).toBe(jti);
    // The one credential handed out is the one recorded, and it works on either replica.
    const used = await call(a.url, "POST", "/v1/tokens/consume", key("billing-api"), { token });
    expect(used.status).toBe(200);
  });

  it("concurrent approvals by distinct reviewers: the quorum is counted exactly once", async () => {
    for (let round = 0; round < 5; round++) {
      const { id, status } = await create(a, CUSTOMERS_EXPORT);
      expect(status).toBe("pending");
      const reviewers = ["bob", "carol", "dave", "erin"];
      const answers = await Promise.all(reviewers.map((r, i) => review(pick(i), r, id, "approve")));
      // Quorum 2: two approvals count, the others find the request decided.
      expect(tally(answers)).toEqual({
        statuses: { 200: 2, 409: 2 },
        codes: { request_not_pending: 2 },
      });
      const events = await eventsOf(id);
      expect(count(events, "approval.granted")).toBe(2);
      expect(count(events, "request.approved")).toBe(1);
      const approved = events.find((e) => e.type === "request.approved");
      expect(approved?.data.approvers).toHaveLength(2);
    }
  });

  it("an approve racing a deny: one outcome, and the events say which", async () => {
    for (let round = 0; round < 8; round++) {
      const { id } = await create(b, CUSTOMERS_EXPORT);
      expect((await review(a, "bob", id, "approve")).status).toBe(200);
      // carol's approval would complete the quorum; dave denies at the same moment.
      const [approve, deny] = await Promise.all([
        review(round % 2 === 0 ? a : b, "carol", id, "approve"),
        review(round % 2 === 0 ? b : a, "dave", id, "deny"),
      ]);
      const events = await eventsOf(id);
      const approvedEvents = count(events, "request.approved");
      const deniedEvents = count(events, "request.denied");
      expect(approvedEvents + deniedEvents).toBe(1);
      const winner = approvedEvents === 1 ? "approved" : "denied";
      // The loser was told the request was already decided; the state agrees with the events.
      const loser = winner === "approved" ? deny : approve;
      expect([approve.status, deny.status].sort()).toEqual([200, 409]);
      expect((loser.body as { error: { code: string } }).error.code).toBe("request_not_pending");
      const now = await call<{ status: string }>(a.url, "GET", `/v1/requests/${id}`, key("dana"));
      expect(now.body.status).toBe(winner);
    }
  });
});

describe("shared limits, wake-ups and metrics", () => {
  it("rate limits hold across replicas: 429 rate_limited with Retry-After", async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        call(pick(i).url, "POST", "/v1/requests", key("limited-agent"), S3_READ),
      ),
    );
    // limited-agent may make 2 requests at once, in total, whichever replica takes them.
    expect(tally(answers)).toEqual({ statuses: { 201: 2, 429: 4 }, codes: { rate_limited: 4 } });
    for (const res of answers.filter((x) => x.status === 429)) {
      const retryAfter = Number(res.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // Other agents are not affected.
    await create(b, S3_READ);
  });

  it("an approval on one replica wakes a long-poll on the other at once", async () => {
    const { id } = await create(a, CUSTOMERS_EXPORT);
    await review(b, "bob", id, "approve");
    const poll = call<{ status: string }>(
      a.url,
      "GET",
      `/v1/requests/${id}?wait=30&while=pending`,
      key("report-agent"),
    );
    const started = performance.now();
    await review(b, "carol", id, "approve");
    const woken = await poll;
    expect(woken.body.status).toBe("approved");
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("each replica serves /metrics; summed over replicas they match the record", async () => {
    const texts = await Promise.all(
      replicas().map(async (r) => (await fetch(`${r.metricsUrl}/metrics`)).text()),
    );
    const sum = (series: string) =>
      texts
        .map((t) => t.split("\n").find((l) => l.startsWith(`${series} `)))
        .reduce((total, line) => total + (line ? Number(line.split(" ")[1]) : 0), 0);
    const events = await allEvents(a.url, key("dana"));
    expect(sum("writ_token_replays_blocked_total")).toBe(count(events, "token.replay_blocked"));
    expect(sum("writ_tokens_used_total")).toBe(count(events, "token.used"));
    expect(sum('writ_credentials_issued_total{type="jwt"}')).toBe(
      count(events, "credential.issued"),
    );
    expect(sum('writ_decisions_total{effect="approve"}')).toBe(
      events.filter((e) => e.type === "request.decided" && e.data.effect === "approve").length,
    );
    expect(sum("writ_rate_limited_total")).toBe(4);
    expect(sum("writ_approval_latency_seconds_count")).toBeGreaterThan(0);
    expect(
      sum('writ_http_requests_total{route="/v1/tokens/consume",method="POST",status="409"}'),
    ).toBe(999);
    for (const text of texts) {
      // Route templates only: no request ids, tokens or keys in any label.
      expect(text).not.toMatch(/req_[A-Za-z0-9_-]{22}|writ_agent_|eyJ/);
    }
  });
});

describe("fail closed while Redis is down, recover when it is back", () => {
  it("answers 503 store_unavailable to every change, reports not ready, then recovers by itself", async () => {
    const pending = await create(a, CUSTOMERS_EXPORT);
    const approved = await create(a, S3_READ);
    const issued = await create(b, S3_READ);
    const token = await collect(b, issued.id);

    await redis.stop("SIGTERM");
    const changes = await Promise.all([
      call(a.url, "POST", "/v1/requests", key("report-agent"), S3_READ),
      call(b.url, "POST", `/v1/requests/${pending.id}/approve`, key("bob"), {}),
      call(a.url, "POST", `/v1/requests/${pending.id}/deny`, key("carol"), { reason: "no" }),
      call(b.url, "POST", `/v1/requests/${pending.id}/cancel`, key("report-agent")),
      call(a.url, "POST", `/v1/requests/${approved.id}/credential`, key("report-agent")),
      call(b.url, "POST", "/v1/tokens/consume", key("billing-api"), { token }),
      call(a.url, "POST", `/v1/requests/${issued.id}/revoke`, key("dana"), { reason: "x" }),
    ]);
    for (const res of changes) {
      expect(res.status, JSON.stringify(res.body)).toBe(503);
      expect((res.body as { error: { code: string } }).error.code).toBe("store_unavailable");
      // No credential leaves: the body is the error envelope and nothing else.
      expect(Object.keys(res.body)).toEqual(["error"]);
    }
    for (const r of replicas()) expect((await call(r.url, "GET", "/readyz")).status).toBe(503);
    // Alive, only not ready: an orchestrator must not kill it for this.
    for (const r of replicas()) expect((await call(r.url, "GET", "/healthz")).status).toBe(200);

    await redis.restart();
    for (const r of replicas()) {
      await expect
        .poll(async () => (await call(r.url, "GET", "/readyz")).status, {
          timeout: 15_000,
          interval: 100,
        })
        .toBe(200);
    }
    // Nothing changed during the outage, and everything works again on both replicas.
    const still = await call<{ status: string }>(
      b.url,
      "GET",
      `/v1/requests/${pending.id}`,
      key("dana"),
    );
    expect(still.body.status).toBe("pending");
    expect(await collect(b, approved.id)).toMatch(/^eyJ/);
    expect(
      (await call(a.url, "POST", "/v1/tokens/consume", key("billing-api"), { token })).status,
    ).toBe(200);
    await create(b, S3_READ);
    const metrics = await Promise.all(
      replicas().map(async (r) => (await fetch(`${r.metricsUrl}/metrics`)).text()),
    );
    expect(
      metrics.some((t) => /^writ_redis_errors_total\{operation="[a-zA-Z_]+"\} [1-9]/m.test(t)),
    ).toBe(true);
  }, 30_000);
});
