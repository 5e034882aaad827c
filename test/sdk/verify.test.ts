import { rm } from "node:fs/promises";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { Hono } from "hono";
import { generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWritClient } from "../../src/sdk/client.js";
import { type WritAuthEnv, writAuth } from "../../src/sdk/hono.js";
import { createWritVerifier, WritVerifyError } from "../../src/sdk/verify.js";
import type { RunningServer } from "../../src/server.js";
import { keyOf, S3_READ } from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit;
let server: RunningServer;
let app: Hono<WritAuthEnv>;

const REPORT = S3_READ.resource;

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return address.port;
}

/** An s3 read for `audience`, approved at once and collected. */
async function token(audience = "billing-api", resource: string = REPORT): Promise<string> {
  const agent = createWritClient({ url: server.url, key: keyOf(t, "report-agent") });
  const created = await agent.request({ ...S3_READ, resource, audience });
  const credential = await agent.collectCredential(created.id);
  if (credential.type !== "jwt") throw new Error("expected a JWT");
  return credential.token;
}

function get(path: string, bearer?: string, headers: Record<string, string> = {}) {
  return app.request(path, {
    headers: { ...headers, ...(bearer !== undefined ? { authorization: `Bearer ${bearer}` } : {}) },
  });
}

async function refused(res: Response, status: number, code: string) {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return res;
}

/** writ's claims for an s3 read, re-signed with `key` as the test sees fit. */
function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: "writ",
    sub: "report-agent",
    aud: "billing-api",
    jti: "jti_AAAAAAAAAAAAAAAAAAAAAA",
    iat: now,
    nbf: now,
    exp: now + 300,
    request_id: "req_AAAAAAAAAAAAAAAAAAAAAA",
    authorization_details: [
      { type: "writ_action", actions: ["s3:GetObject"], locations: [REPORT] },
    ],
    ...overrides,
  };
}

beforeAll(async () => {
  const extra = extraIdentities({ resource_servers: [{ id: "other-api", audience: "other-api" }] });
  t = await startTestWrit(extra.overrides);
  Object.assign(t.keys, extra.keys);
  // Resource servers check expiry on the real clock: writ's must agree.
  t.clock.advance((Date.now() - t.clock.now()) / 1000);
  server = await serveTestWrit(t);
  const verifier = createWritVerifier({
    writUrl: server.url,
    audience: "billing-api",
    resourceServerKey: keyOf(t, "billing-api"),
  });
  app = new Hono<WritAuthEnv>();
  app.get("/reports/q3", writAuth({ verifier, action: "s3:GetObject", resource: REPORT }), (c) =>
    c.json({ ok: true, grant: c.get("writ") }),
  );
  app.delete(
    "/reports/q3",
    writAuth({ verifier, action: "s3:DeleteObject", resource: REPORT }),
    (c) => c.json({ deleted: true }),
  );
  app.get(
    "/objects/:name",
    writAuth({
      verifier,
      action: "s3:GetObject",
      resource: (c) => `arn:aws:s3:::demo-reports/${c.req.param("name")}`,
    }),
    (c) => c.json({ ok: true }),
  );
});

afterAll(async () => {
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
});

describe("writAuth (Hono)", () => {
  it("lets a valid token for the route's action and resource through once, then 401 token_replayed", async () => {
    const jwt = await token();
    const first = await get("/reports/q3", jwt);
    expect(first.status).toBe(200);
    const body = (await first.json()) as { grant: Record<string, unknown> };
    expect(body.grant).toMatchObject({
      agent: "report-agent",
      action: "s3:GetObject",
      resource: REPORT,
    });
    const replay = await refused(await get("/reports/q3", jwt), 401, "token_replayed");
    expect(replay.headers.get("www-authenticate")).toBe(
      'Bearer realm="writ", error="invalid_token"',
    );
  });

  it("refuses another action or resource with 403, without burning the token", async () => {
    const jwt = await token();
    const res = await refused(
      await app.request("/reports/q3", {
        method: "DELETE",
        headers: { authorization: `Bearer ${jwt}` },
      }),
      403,
      "insufficient_scope",
    );
    expect(res.headers.get("www-authenticate")).toMatch(/error="insufficient_scope"/);
    await refused(await get("/objects/other.csv", jwt), 403, "insufficient_scope");
    // Resource matching is exact: a prefix or a different case is another resource.
    await refused(await get("/objects/Q3.csv", jwt), 403, "insufficient_scope");
    expect((await get("/objects/q3.csv", jwt)).status).toBe(200);
  });

  it("refuses a token issued for another audience", async () => {
    await refused(await get("/reports/q3", await token("other-api")), 401, "token_invalid");
  });

  it("refuses an expired token, and one not valid yet", async () => {
    const now = Math.floor(Date.now() / 1000);
    const signed = (overrides: Record<string, unknown>) =>
      new SignJWT(claims(overrides))
        .setProtectedHeader({ alg: "EdDSA", kid: t.writ.keys.active.kid, typ: "JWT" })
        .sign(t.writ.keys.active.privateKey);
    await refused(
      await get("/reports/q3", await signed({ iat: now - 400, nbf: now - 400, exp: now - 100 })),
      401,
      "token_expired",
    );
    await refused(
      await get("/reports/q3", await signed({ iat: now, nbf: now + 600, exp: now + 900 })),
      401,
      "token_expired",
    );
  });

  it("refuses bad signatures, alg none, a key not in the JWKS and writ's key with another issuer", async () => {
    const jwt = await token();
    const [header, payload, signature = ""] = jwt.split(".");
    const flipped = `${header}.${payload}.${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    await refused(await get("/reports/q3", flipped), 401, "token_invalid");

    const none = new UnsecuredJWT(claims()).encode();
    await refused(await get("/reports/q3", none), 401, "token_invalid");

    const stranger = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    for (const kid of ["not-in-jwks", t.writ.keys.active.kid]) {
      const forged = await new SignJWT(claims())
        .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
        .sign(stranger.privateKey);
      await refused(await get("/reports/q3", forged), 401, "token_invalid");
    }
    const signed = (overrides: Record<string, unknown>) =>
      new SignJWT(claims(overrides))
        .setProtectedHeader({ alg: "EdDSA", kid: t.writ.keys.active.kid, typ: "JWT" })
        .sign(t.writ.keys.active.privateKey);
    await refused(
      await get("/reports/q3", await signed({ iss: "not-writ" })),
      401,
      "token_invalid",
    );
    // writ's key, but not writ's grant shape (two grants in one token).
    const detail = { type: "writ_action", actions: ["s3:GetObject"], locations: [REPORT] };
    await refused(
      await get("/reports/q3", await signed({ authorization_details: [detail, detail] })),
      401,
      "token_invalid",
    );
    // writ's key and shape, but writ never issued it: consume refuses it.
    await refused(await get("/reports/q3", await signed({})), 401, "token_invalid");
  });

  it("reads the scheme in any case (RFC 9110), the token exactly", async () => {
    const res = await get("/reports/q3", undefined, { authorization: `bearer ${await token()}` });
    expect(res.status).toBe(200);
  });

  it("refuses a missing, malformed or oversized bearer", async () => {
    const missing = await refused(await get("/reports/q3"), 401, "token_missing");
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="writ"');
    await refused(
      await get("/reports/q3", undefined, { authorization: "Basic abc" }),
      401,
      "token_invalid",
    );
    await refused(await get("/reports/q3", "not-a-jwt"), 401, "token_invalid");
    await refused(await get("/reports/q3", "a".repeat(9000)), 401, "token_invalid");
  });

  it("refuses a token writ revoked before its use", async () => {
    const agent = createWritClient({ url: server.url, key: keyOf(t, "report-agent") });
    const created = await agent.request(S3_READ);
    const credential = await agent.collectCredential(created.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    await agent.complete(created.id);
    await refused(await get("/reports/q3", credential.token), 401, "token_invalid");
  });
});

describe("createWritVerifier", () => {
  it("verifies framework-free, for exactly the required grant", async () => {
    const verifier = createWritVerifier({
      writUrl: server.url,
      jwksUrl: `${server.url}/.well-known/jwks.json`,
      audience: "billing-api",
      resourceServerKey: keyOf(t, "billing-api"),
      algorithms: ["EdDSA"],
      clockToleranceSeconds: 0,
    });
    const jwt = await token();
    await expect(
      verifier.verify(jwt, { action: "s3:GetObject", resource: `${REPORT}x` }),
    ).rejects.toMatchObject({
      code: "insufficient_scope",
      status: 403,
    });
    const grant = await verifier.verify(jwt, { action: "s3:GetObject", resource: REPORT });
    expect(grant.expiresAt).toBeGreaterThan(Date.now());
    const replay = await verifier
      .verify(jwt, { action: "s3:GetObject", resource: REPORT })
      .catch((e: unknown) => e);
    expect(replay).toBeInstanceOf(WritVerifyError);
    expect(replay).toMatchObject({ code: "token_replayed", status: 401 });
    expect((replay as Error).message).not.toContain(jwt);
    expect(JSON.stringify(replay)).toBe(
      JSON.stringify({ error: { code: "token_replayed", message: (replay as Error).message } }),
    );
  });

  it("fails closed with 503 when writ cannot confirm the token", async () => {
    const jwt = await token();
    const wrongKey = createWritVerifier({
      writUrl: server.url,
      audience: "billing-api",
      resourceServerKey: "writ_rs_not-a-real-key",
    });
    await expect(
      wrongKey.verify(jwt, { action: "s3:GetObject", resource: REPORT }),
    ).rejects.toMatchObject({
      code: "writ_unavailable",
      status: 503,
    });
    const down = createWritVerifier({
      writUrl: `http://127.0.0.1:${await closedPort()}`,
      audience: "billing-api",
      resourceServerKey: keyOf(t, "billing-api"),
    });
    await expect(
      down.verify(jwt, { action: "s3:GetObject", resource: REPORT }),
    ).rejects.toMatchObject({
      code: "writ_unavailable",
    });
    // The token was never consumed, so it still works where writ is reachable.
    const ok = createWritVerifier({
      writUrl: server.url,
      audience: "billing-api",
      resourceServerKey: keyOf(t, "billing-api"),
    });
    await expect(
      ok.verify(jwt, { action: "s3:GetObject", resource: REPORT }),
    ).resolves.toBeDefined();
  });

  it("fails closed with 503 when writ takes the connection but never answers the consume", async () => {
    const jwt = await token();
    // Accepts connections and reads them, but never answers.
    const held: Socket[] = [];
    const silent = createServer((socket) => {
      held.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const stuck = createWritVerifier({
        writUrl: `http://127.0.0.1:${port}`,
        jwksUrl: `${server.url}/.well-known/jwks.json`,
        audience: "billing-api",
        resourceServerKey: keyOf(t, "billing-api"),
        timeoutMs: 300,
      });
      const outcome = await Promise.race([
        stuck.verify(jwt, { action: "s3:GetObject", resource: REPORT }).catch((e: unknown) => e),
        new Promise((resolve) => setTimeout(() => resolve("still waiting"), 5000).unref()),
      ]);
      expect(outcome).toBeInstanceOf(WritVerifyError);
      expect(outcome).toMatchObject({ code: "writ_unavailable", status: 503 });
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("refuses unsafe options with a TypeError", () => {
    const base = {
      writUrl: server.url,
      audience: "billing-api",
      resourceServerKey: keyOf(t, "billing-api"),
    };
    expect(() => createWritVerifier({ ...base, clockToleranceSeconds: 61 })).toThrow(TypeError);
    expect(() => createWritVerifier({ ...base, audience: "" })).toThrow(TypeError);
    expect(() => createWritVerifier({ ...base, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => createWritVerifier({ ...base, algorithms: [] })).toThrow(TypeError);
    expect(() => createWritVerifier({ ...base, algorithms: ["HS256" as "EdDSA"] })).toThrow(
      TypeError,
    );
    expect(() => createWritVerifier({ ...base, writUrl: "ftp://x" })).toThrow(TypeError);
    expect(() => writAuth({ ...base, action: "", resource: REPORT })).toThrow(TypeError);
  });
});
