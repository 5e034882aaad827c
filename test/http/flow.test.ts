import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JSONWebKeySet,
  jwtVerify,
} from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AUTHORIZATION_DETAILS_TYPE } from "../../src/adapters/jwt-minter.js";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  type RequestBody,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

interface ConsumeBody {
  active: boolean;
  sub: string;
  action: string;
  resource: string;
  request_id: string;
  jti: string;
  exp: number;
}

describe("the full flow over the HTTP API", () => {
  let t: TestWrit;
  let agent: string;
  beforeEach(async () => {
    t = await startTestWrit();
    agent = keyOf(t, "report-agent");
  });
  afterEach(async () => {
    await t.close();
  });

  const consume = (token: string) =>
    t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });

  it("allows an s3 read at once, hands out the credential once, and consumes it once", async () => {
    const res = await t.call("POST", "/v1/requests", { key: agent, body: S3_READ });
    const created = await expectJson<RequestBody>(res, 201);
    expect(res.headers.get("location")).toBe(`/v1/requests/${created.id}`);
    expect(created.id).toMatch(/^req_[A-Za-z0-9_-]{22}$/);
    expect(created).toMatchObject({
      status: "approved",
      agent: "report-agent",
      owner: "alice",
      action: S3_READ.action,
      resource: S3_READ.resource,
      pending_approvals: 0,
      decision: { effect: "allow", policies: ["demo-reports-read"] },
    });

    const collected = await t.call("POST", `/v1/requests/${created.id}/credential`, { key: agent });
    expect(collected.headers.get("cache-control")).toBe("no-store");
    const { credential } = await expectJson<{
      credential: { type: string; token: string; expires_at: string };
    }>(collected, 200);
    expect(credential.type).toBe("jwt");
    const claims = decodeJwt(credential.token);

    const used = await expectJson<ConsumeBody>(await consume(credential.token), 200);
    expect(used).toEqual({
      active: true,
      sub: "report-agent",
      action: S3_READ.action,
      resource: S3_READ.resource,
      request_id: created.id,
      jti: claims.jti,
      exp: claims.exp,
    });
    expect(new Date(credential.expires_at).getTime()).toBe((claims.exp as number) * 1000);

    await expectError(await consume(credential.token), 409, "token_replayed");

    const after = await expectJson<RequestBody>(
      await t.call("GET", `/v1/requests/${created.id}`, { key: agent }),
      200,
    );
    expect(after.status).toBe("used");
    expect(after.credential).toMatchObject({ type: "jwt", id: claims.jti });
    const types = (await allEvents(t, { request_id: created.id })).map((e) => e.type);
    expect(types).toEqual([
      "request.created",
      "request.decided",
      "request.approved",
      "credential.issued",
      "token.used",
      "token.replay_blocked",
    ]);
  });

  it("waits for two distinct data-owners before a customer export is approved", async () => {
    const created = await createRequest(t, CUSTOMERS_EXPORT);
    expect(created).toMatchObject({
      status: "pending",
      pending_approvals: 2,
      decision: {
        effect: "approve",
        policies: ["customers-export"],
        requirements: [{ groups: ["data-owners"], quorum: 2 }],
      },
    });
    await expectError(
      await t.call("POST", `/v1/requests/${created.id}/credential`, { key: agent }),
      409,
      "approval_pending",
    );

    const once = await approveAs(t, "bob", created.id);
    expect(once).toMatchObject({ status: "pending", pending_approvals: 1 });
    expect(once.reviews).toMatchObject([{ reviewer: "bob", verdict: "approve" }]);

    const twice = await approveAs(t, "carol", created.id);
    expect(twice).toMatchObject({ status: "approved", pending_approvals: 0 });

    const token = await collectToken(t, created.id);
    expect(decodeJwt(token)).toMatchObject({ sub: "report-agent", request_id: created.id });
    await expectJson<ConsumeBody>(await consume(token), 200);

    const events = await allEvents(t, { request_id: created.id });
    expect(events.map((e) => e.type)).toEqual([
      "request.created",
      "request.decided",
      "approval.granted",
      "approval.granted",
      "request.approved",
      "credential.issued",
      "token.used",
    ]);
    expect(events[4]?.data).toEqual({ by: "reviewers", approvers: ["bob", "carol"] });
    expect(events[0]?.data).toMatchObject({ reason: CUSTOMERS_EXPORT.reason, owner: "alice" });
  });

  it("answers a long-poll as soon as another call approves the request", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await approveAs(t, "bob", id);

    // Know for certain the poll is parked on the store before approving, so the
    // test proves the wake-up rather than a read that came after the approval.
    const store = t.writ.broker.deps.store;
    const original = store.waitForChange.bind(store);
    let parked!: () => void;
    const isParked = new Promise<void>((resolve) => {
      parked = resolve;
    });
    store.waitForChange = (...args) => {
      parked();
      return original(...args);
    };

    const started = performance.now();
    let settled = false;
    const poll = t.call("GET", `/v1/requests/${id}?wait=5`, { key: agent }).then((res) => {
      settled = true;
      return res;
    });
    await isParked;
    expect(settled).toBe(false);
    await approveAs(t, "carol", id);
    const answered = await expectJson<RequestBody>(await poll, 200);
    expect(answered.status).toBe("approved");
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("ends a long-poll with the unchanged request when nothing happens within the wait", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const started = performance.now();
    const answered = await expectJson<RequestBody>(
      await t.call("GET", `/v1/requests/${id}?wait=1`, { key: agent }),
      200,
    );
    const elapsed = performance.now() - started;
    expect(answered.status).toBe("pending");
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(4000);
  });

  it("mints an EdDSA JWT with exactly the approved grant, verifiable with the served JWKS", async () => {
    const { id } = await createRequest(t, { ...S3_READ, ttl_seconds: 120 });
    const token = await collectToken(t, id);

    const header = decodeProtectedHeader(token);
    expect(header.alg).toBe("EdDSA");
    expect(header.kid).toEqual(expect.any(String));
    const jwks = await expectJson<JSONWebKeySet>(
      await t.call("GET", "/.well-known/jwks.json"),
      200,
    );
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    for (const key of jwks.keys) expect(key).not.toHaveProperty("d");

    const claims = decodeJwt(token);
    expect(claims.iss).toBe("writ");
    expect(claims.sub).toBe("report-agent");
    expect(claims.aud).toBe("billing-api");
    expect(claims.jti).toMatch(/^jti_[A-Za-z0-9_-]{22}$/);
    expect(claims.iat).toBe(Math.floor(t.clock.now() / 1000));
    expect(claims.exp).toBe((claims.iat as number) + 120);
    expect(claims.exp as number).toBeLessThanOrEqual((claims.iat as number) + 300);
    expect(claims.authorization_details).toEqual([
      {
        type: AUTHORIZATION_DETAILS_TYPE,
        actions: [S3_READ.action],
        locations: [S3_READ.resource],
      },
    ]);
    expect(claims.request_id).toBe(id);

    const verified = await jwtVerify(token, createLocalJWKSet(jwks), {
      algorithms: ["EdDSA"],
      issuer: "writ",
      audience: "billing-api",
      currentDate: new Date(t.clock.now()),
    });
    expect(verified.payload.jti).toBe(claims.jti);
  });

  it("caps the credential lifetime at the policy's TTL", async () => {
    const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, ttl_seconds: 3600 });
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    const claims = decodeJwt(await collectToken(t, id));
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
  });

  it("serves an OpenAPI 3.1 document listing every v1 path", async () => {
    const doc = await expectJson<{
      openapi: string;
      info: { title: string };
      paths: Record<string, Record<string, unknown>>;
      components: { securitySchemes: Record<string, unknown> };
    }>(await t.call("GET", "/openapi.json"), 200);
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info.title).toBe("writ");
    expect(doc.components.securitySchemes).toHaveProperty("bearer");
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    // Every v1 route the app serves is documented, with health, readiness and the
    // JWKS, and nothing else is.
    const outsideV1 = ["/healthz", "/readyz", "/.well-known/jwks.json"];
    const served = t.writ.app.routes
      .filter(
        (r) => (r.path.startsWith("/v1/") || outsideV1.includes(r.path)) && r.method !== "ALL",
      )
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z_]+)/g, "{$1}")}`);
    expect(new Set(documented)).toEqual(new Set(served));
    expect(documented).toEqual(
      expect.arrayContaining([
        "POST /v1/requests",
        "GET /v1/requests",
        "GET /v1/requests/{id}",
        "POST /v1/requests/{id}/approve",
        "POST /v1/requests/{id}/deny",
        "POST /v1/requests/{id}/cancel",
        "POST /v1/requests/{id}/credential",
        "POST /v1/tokens/consume",
        "GET /v1/events",
      ]),
    );
  });

  it("serves the API docs as HTML", async () => {
    const res = await t.call("GET", "/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await res.text()).toMatch(/<html/i);
  });

  it("answers health and readiness probes without a key", async () => {
    expect(await expectJson(await t.call("GET", "/healthz"), 200)).toEqual({ status: "ok" });
    expect(await expectJson(await t.call("GET", "/readyz"), 200)).toEqual({ status: "ready" });
    await t.writ.broker.deps.store.close();
    expect(await expectJson(await t.call("GET", "/readyz"), 503)).toEqual({
      status: "not_ready",
    });
  });
});

describe("rule 2 by a reviewer's email", () => {
  it("refuses a reviewer whose configured email is the agent's owner, through the API", async () => {
    const agentKey = generateKey("agent");
    const frankKey = generateKey("reviewer");
    const t = await startTestWrit({
      identities: {
        agents: [{ id: "mail-agent", key_sha256: hashKey(agentKey), owner: "frank@example.com" }],
        reviewers: [
          {
            id: "frank",
            key_sha256: hashKey(frankKey),
            groups: ["data-owners"],
            email: "Frank@Example.com",
          },
        ],
      },
    });
    try {
      const created = await createRequest(t, CUSTOMERS_EXPORT, agentKey);
      for (const [verdict, body] of [
        ["approve", {}],
        ["deny", { reason: "not this quarter" }],
      ] as const) {
        await expectError(
          await t.call("POST", `/v1/requests/${created.id}/${verdict}`, { key: frankKey, body }),
          403,
          "self_approval_forbidden",
        );
      }
      // Another data owner still counts.
      expect(await approveAs(t, "bob", created.id)).toMatchObject({ pending_approvals: 1 });
    } finally {
      await t.close();
    }
  });
});
