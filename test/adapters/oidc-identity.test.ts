import { rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createOidcAuthenticator, DISCOVERY_REFRESH_MS } from "../../src/adapters/oidc-identity.js";
import { runCli } from "../../src/cli/main.js";
import { OidcIssuerConfig } from "../../src/config/oidc-schema.js";
import { createWritClient } from "../../src/sdk/client.js";
import { WritApiError } from "../../src/sdk/errors.js";
import type { RunningServer } from "../../src/server.js";
import { tempPolicies } from "../policy/temp-policies.js";
import {
  allEvents,
  expectError,
  expectJson,
  keyOf,
  type RequestBody,
  UNKNOWN_REQUEST_ID,
} from "../support/api.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { type LoopbackIssuer, startOidcIssuer } from "../support/oidc-issuer.js";

const POLICIES = `
@id("deploy-reports")
permit (principal, action == Action::"deploy:run", resource == Resource::"svc://reports")
when { principal has repository && principal.repository == "acme/reports" };

@id("deploy-prod")
@approvers("data-owners")
permit (principal, action == Action::"deploy:prod", resource == Resource::"svc://reports")
when { principal has oidc_issuer };

@id("key-agent-read")
permit (principal == Agent::"report-agent", action == Action::"s3:GetObject", resource);

@id("k8s-read")
permit (principal, action == Action::"s3:GetObject", resource)
when { principal has namespace && principal.namespace == "agents" };
`;

const DEPLOY = { action: "deploy:run", resource: "svc://reports", audience: "billing-api" };

let t: TestWrit;
let github: LoopbackIssuer;
let k8s: LoopbackIssuer;
let removePolicies: () => Promise<void>;
let downIssuer: string;

/** GitHub-Actions-like claims for the acme/reports repository. */
function ghClaims(overrides: Record<string, unknown> = {}) {
  return {
    aud: "writ-test",
    sub: "repo:acme/reports:ref:refs/heads/main",
    repository: "acme/reports",
    repository_owner: "acme",
    ref: "refs/heads/main",
    actor: "octocat",
    ...overrides,
  };
}

function bearer(token: string) {
  return { key: token };
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return address.port;
}

beforeAll(async () => {
  let now = () => Date.now();
  github = await startOidcIssuer({ now: () => now() });
  k8s = await startOidcIssuer({ now: () => now() });
  downIssuer = `http://127.0.0.1:${await closedPort()}`;
  const policies = await tempPolicies({ "oidc.cedar": POLICIES });
  removePolicies = policies.remove;
  t = await startTestWrit({
    policies: { dir: policies.dir, watch: false },
    identities: {
      oidc: [
        {
          issuer: github.issuer,
          audience: "writ-test",
          agent: {
            id: "gh:{repository}",
            owner: "{actor}",
            attributes: { repository: "repository", ref: "ref" },
          },
          require: { repository_owner: "acme", ref: ["refs/heads/main", "refs/heads/release"] },
        },
        {
          issuer: k8s.issuer,
          jwks_uri: k8s.jwksUri,
          audience: ["writ-k8s", "writ-other"],
          algorithms: ["ES256"],
          clock_tolerance_seconds: 0,
          agent: {
            id: "k8s:{kubernetes.io/namespace}/{kubernetes.io/serviceaccount/name}",
            owner: "carol",
            attributes: { namespace: "kubernetes.io/namespace" },
          },
          require: { "kubernetes.io/namespace": "agents" },
        },
        {
          issuer: downIssuer,
          audience: "writ-test",
          agent: { id: "down:{sub}", owner: "alice" },
          require: { sub: "x" },
        },
      ],
    },
  });
  now = () => t.clock.now();
});

let server: RunningServer | undefined;

afterAll(async () => {
  // server.stop() closes the writ too.
  if (server !== undefined) {
    await server.stop();
    await rm(t.dataDir, { recursive: true, force: true });
  } else {
    await t?.close();
  }
  await github?.close();
  await k8s?.close();
  await removePolicies?.();
});

describe("OIDC workload identity: mapped tokens", () => {
  it("a mapped token authenticates an agent whose attributes reach the policy", async () => {
    const token = await github.sign(ghClaims());
    const created = await expectJson<RequestBody>(
      await t.call("POST", "/v1/requests", { ...bearer(token), body: DEPLOY }),
      201,
    );
    expect(created).toMatchObject({
      status: "approved",
      agent: "gh:acme/reports",
      owner: "octocat",
      decision: { effect: "allow", policies: ["deploy-reports"] },
    });
    // The same agent reads its own request with the same (or a fresh) token.
    const again = await github.sign(ghClaims());
    await expectJson(await t.call("GET", `/v1/requests/${created.id}`, bearer(again)), 200);
    // The token never lands in the record.
    const events = await allEvents(t, { request_id: created.id });
    expect(JSON.stringify(events)).not.toContain(token);
    expect(events[0]?.data).toMatchObject({ agent: "gh:acme/reports", owner: "octocat" });
  });

  it("another repository's attributes do not satisfy the policy", async () => {
    const token = await github.sign(ghClaims({ repository: "acme/other" }));
    await expectError(
      await t.call("POST", "/v1/requests", { ...bearer(token), body: DEPLOY }),
      403,
      "policy_denied",
    );
  });

  it("nested claims map through a configured jwks_uri (Kubernetes service accounts)", async () => {
    const token = await k8s.sign(
      {
        aud: "writ-other",
        sub: "system:serviceaccount:agents:reporter",
        "kubernetes.io": { namespace: "agents", serviceaccount: { name: "reporter" } },
      },
      { alg: "ES256" },
    );
    const created = await expectJson<RequestBody>(
      await t.call("POST", "/v1/requests", {
        ...bearer(token),
        body: { action: "s3:GetObject", resource: "arn:aws:s3:::x/y", audience: "billing-api" },
      }),
      201,
    );
    expect(created).toMatchObject({ agent: "k8s:agents/reporter", owner: "carol" });
  });

  it("the owner a token maps to can never approve the agent's request", async () => {
    const token = await github.sign(ghClaims({ actor: "bob" }));
    const created = await expectJson<RequestBody>(
      await t.call("POST", "/v1/requests", {
        ...bearer(token),
        body: { ...DEPLOY, action: "deploy:prod" },
      }),
      201,
    );
    expect(created).toMatchObject({ status: "pending", owner: "bob" });
    await expectError(
      await t.call("POST", `/v1/requests/${created.id}/approve`, {
        key: keyOf(t, "bob"),
        body: {},
      }),
      403,
      "self_approval_forbidden",
    );
    // An OIDC principal is an agent: it cannot review, even its own kind's requests.
    await expectError(
      await t.call("POST", `/v1/requests/${created.id}/approve`, { ...bearer(token), body: {} }),
      403,
      "wrong_principal_kind",
    );
    // Another repository is another agent: the request does not exist for it.
    const other = await github.sign(ghClaims({ repository: "acme/other" }));
    await expectError(
      await t.call("GET", `/v1/requests/${created.id}`, bearer(other)),
      404,
      "not_found",
    );
  });

  it("a run started by one person never reaches the request of a run started by another", async () => {
    // bob's run asks; alice, who is not its owner, approves it.
    const bobRun = await github.sign(ghClaims({ actor: "bob" }));
    const created = await expectJson<RequestBody>(
      await t.call("POST", "/v1/requests", {
        ...bearer(bobRun),
        body: { ...DEPLOY, action: "deploy:prod" },
      }),
      201,
    );
    await expectJson(
      await t.call("POST", `/v1/requests/${created.id}/approve`, {
        key: keyOf(t, "alice"),
        body: {},
      }),
      200,
    );
    // A run alice starts maps to the same agent id, with alice as its owner: were
    // it to collect, alice would hold a credential she approved herself. To it the
    // request does not exist, through every call, as an unknown id does not.
    const aliceRun = await github.sign(ghClaims({ actor: "Alice" }));
    const calls: [string, string, unknown][] = [
      ["GET", `/v1/requests/${created.id}`, undefined],
      ["GET", `/v1/requests/${created.id}?wait=1`, undefined],
      ["POST", `/v1/requests/${created.id}/credential`, {}],
      ["POST", `/v1/requests/${created.id}/cancel`, {}],
      ["POST", `/v1/requests/${created.id}/complete`, {}],
    ];
    for (const [method, path, body] of calls) {
      const error = await expectError(
        await t.call(method, path, { ...bearer(aliceRun), body }),
        404,
        "not_found",
      );
      const unknown = await expectError(
        await t.call(method, path.replace(created.id, UNKNOWN_REQUEST_ID), {
          ...bearer(aliceRun),
          body,
        }),
        404,
        "not_found",
      );
      expect(error).toEqual(unknown);
    }
    const events = await allEvents(t, { request_id: created.id });
    expect(events.map((e) => e.type)).not.toContain("credential.issued");
    // bob's own run, with a fresh token, still collects it.
    const bobAgain = await github.sign(ghClaims({ actor: "bob" }));
    await expectJson(
      await t.call("POST", `/v1/requests/${created.id}/credential`, {
        ...bearer(bobAgain),
        body: {},
      }),
      200,
    );
  });

  it("accepts skew within the issuer's tolerance, and writ keys still work beside OIDC", async () => {
    const nowSeconds = Math.floor(t.clock.now() / 1000);
    // Expired 5 s ago, within the default 10 s tolerance.
    const late = await github.sign(ghClaims(), { iat: nowSeconds - 305, ttlSeconds: 300 });
    await expectJson(await t.call("POST", "/v1/requests", { ...bearer(late), body: DEPLOY }), 201);
  });
});

describe("OIDC workload identity: refused tokens say why", () => {
  async function refused(token: string, code: string, status = 401) {
    const res = await t.call("GET", "/v1/requests/req_AAAAAAAAAAAAAAAAAAAAAA", bearer(token));
    const error = await expectError(res, status, code);
    if (status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(error.message).not.toContain(token);
    return error;
  }

  it("an untrusted issuer", async () => {
    const stranger = await startOidcIssuer({ now: () => t.clock.now() });
    try {
      await refused(await stranger.sign(ghClaims()), "oidc_issuer_untrusted");
    } finally {
      await stranger.close();
    }
    // writ's own credentials are not agent identities either.
    const { id } = await expectJson<RequestBody>(
      await t.call("POST", "/v1/requests", {
        key: keyOf(t, "report-agent"),
        body: { action: "s3:GetObject", resource: "arn:aws:s3:::x/y", audience: "billing-api" },
      }),
      201,
    );
    const minted = await expectJson<{ credential: { token: string } }>(
      await t.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(t, "report-agent") }),
      200,
    );
    await refused(minted.credential.token, "oidc_issuer_untrusted");
  });

  it("a wrong audience", async () => {
    await refused(await github.sign(ghClaims({ aud: "someone-else" })), "oidc_audience_mismatch");
  });

  it("an expired token, and one not valid yet, beyond the tolerance", async () => {
    const nowSeconds = Math.floor(t.clock.now() / 1000);
    await refused(
      await github.sign(ghClaims(), { iat: nowSeconds - 320, ttlSeconds: 300 }),
      "oidc_token_expired",
    );
    await refused(await github.sign(ghClaims(), { iat: nowSeconds + 120 }), "oidc_token_expired");
    // Tolerance 0 for the k8s issuer: one second late is late.
    const k8sLate = await k8s.sign(
      { aud: "writ-k8s", "kubernetes.io": { namespace: "agents", serviceaccount: { name: "r" } } },
      { alg: "ES256", iat: nowSeconds - 301, ttlSeconds: 300 },
    );
    await refused(k8sLate, "oidc_token_expired");
  });

  it("claims that the rules do not map", async () => {
    await refused(
      await github.sign(ghClaims({ repository_owner: "evil" })),
      "oidc_claims_unmapped",
    );
    await refused(await github.sign(ghClaims({ ref: "refs/heads/dev" })), "oidc_claims_unmapped");
    await refused(await github.sign(ghClaims({ actor: undefined })), "oidc_claims_unmapped");
    await refused(
      await github.sign(ghClaims({ repository: { nested: true } })),
      "oidc_claims_unmapped",
    );
    // A claim value that would make an id outside the allowed alphabet.
    await refused(
      await github.sign(ghClaims({ repository: "acme/re ports" })),
      "oidc_claims_unmapped",
    );
    // An owner that is not a person id.
    await refused(await github.sign(ghClaims({ actor: "bob:evil" })), "oidc_claims_unmapped");
    const wrongNamespace = await k8s.sign(
      { aud: "writ-k8s", "kubernetes.io": { namespace: "default", serviceaccount: { name: "r" } } },
      { alg: "ES256" },
    );
    await refused(wrongNamespace, "oidc_claims_unmapped");
  });

  it("bad signatures, unknown keys, unpinned algorithms and alg none", async () => {
    const stranger = await github.strangerKey();
    await refused(await github.sign(ghClaims(), { key: stranger }), "oidc_token_invalid");
    await refused(
      await github.sign(ghClaims(), { key: stranger, kid: "rsa-9" }),
      "oidc_token_invalid",
    );
    // The k8s issuer pins ES256: its RS256 tokens fail, though the key is published.
    const rs = await k8s.sign(
      { aud: "writ-k8s", "kubernetes.io": { namespace: "agents", serviceaccount: { name: "r" } } },
      { alg: "RS256" },
    );
    await refused(rs, "oidc_token_invalid");
    // A shared-secret algorithm is never accepted (no algorithm confusion).
    const secret = new TextEncoder().encode("a-shared-secret-that-is-32-bytes!");
    await refused(
      await github.sign(ghClaims(), { alg: "HS256", key: secret }),
      "oidc_token_invalid",
    );
    const none = new UnsecuredJWT({ ...ghClaims(), iss: github.issuer })
      .setIssuedAt(Math.floor(t.clock.now() / 1000))
      .setExpirationTime(Math.floor(t.clock.now() / 1000) + 300)
      .encode();
    await refused(none, "oidc_token_invalid");
    await refused(`${none}x`, "oidc_token_invalid");
    await refused("aaaa.bbbb.cccc", "oidc_token_invalid");
  });

  it("a trusted issuer whose keys cannot be fetched is 503, never a pass", async () => {
    const token = await github.sign({ ...ghClaims(), iss: downIssuer, sub: "x" });
    await refused(token, "oidc_issuer_unavailable", 503);
  });

  it("a bearer longer than any token is unauthenticated", async () => {
    await expectError(
      await t.call("GET", "/v1/requests", { key: `a.${"b".repeat(9000)}.c` }),
      401,
      "unauthenticated",
    );
  });
});

function url(): string {
  if (server === undefined) throw new Error("no server");
  return server.url;
}

describe("the SDK with a tokenProvider", () => {
  beforeEach(() => {
    // Both clocks agree, so a token's `exp` means the same to writ and to the client.
    t.clock.advance((Date.now() - t.clock.now()) / 1000);
  });

  beforeAll(async () => {
    server = await serveTestWrit(t);
  });

  it("reuses a JWT until near its expiry, and asks again when writ refuses it", async () => {
    let calls = 0;
    const client = createWritClient({
      url: url(),
      tokenProvider: async () => {
        calls++;
        return github.sign(ghClaims(), { iat: Math.floor(t.clock.now() / 1000), ttlSeconds: 1800 });
      },
    });
    const created = await client.request(DEPLOY);
    expect(created.agent).toBe("gh:acme/reports");
    await client.get(created.id);
    await client.collectCredential(created.id);
    expect(calls).toBe(1);
    // writ's clock passes the token's expiry before the client's does: the
    // server refuses the cached token, the client gets a new one and retries.
    t.clock.advance(1900);
    expect((await client.get(created.id)).id).toBe(created.id);
    expect(calls).toBe(2);
  });

  it("asks on every call for a token about to expire, and for non-JWT tokens", async () => {
    let calls = 0;
    const client = createWritClient({
      url: url(),
      tokenProvider: () => {
        calls++;
        return github.sign(ghClaims(), { iat: Math.floor(t.clock.now() / 1000), ttlSeconds: 30 });
      },
    });
    const created = await client.request(DEPLOY);
    await client.get(created.id);
    expect(calls).toBe(2);
  });

  it("CLI commands authenticate with a token file (WRIT_TOKEN_FILE)", async () => {
    const file = join(t.dataDir, "token");
    await writeFile(file, `${await github.sign(ghClaims())}\n`, { mode: 0o600 });
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: (text: string) => out.push(text),
      stderr: (text: string) => err.push(text),
      env: { WRIT_URL: url(), WRIT_TOKEN_FILE: file },
      stderrIsTty: false,
    };
    const code = await runCli(
      [
        "request",
        "--action",
        "deploy:run",
        "--resource",
        "svc://reports",
        "--audience",
        "billing-api",
        "--json",
      ],
      io,
    );
    expect(code, err.join("")).toBe(0);
    expect(JSON.parse(out.join(""))).toMatchObject({
      agent: "gh:acme/reports",
      status: "approved",
    });
  });

  it("CLI commands name the WRIT_TOKEN_FILE they cannot use, and why, never its contents", async () => {
    const missing = join(t.dataDir, "no-such-token");
    const empty = join(t.dataDir, "empty-token");
    const spaced = join(t.dataDir, "spaced-token");
    await writeFile(empty, "\n", { mode: 0o600 });
    await writeFile(spaced, "secret-ish token\n", { mode: 0o600 });
    const cases: [string, RegExp][] = [
      [missing, /WRIT_TOKEN_FILE .*no-such-token.* cannot be read \(ENOENT\)/],
      [t.dataDir, /WRIT_TOKEN_FILE .* cannot be read \(EISDIR\)/],
      [empty, /WRIT_TOKEN_FILE .*empty-token.* is empty/],
      [spaced, /WRIT_TOKEN_FILE .*spaced-token.* does not hold a token/],
    ];
    for (const [file, expected] of cases) {
      const err: string[] = [];
      const io = {
        stdout: () => {},
        stderr: (text: string) => err.push(text),
        env: { WRIT_URL: url(), WRIT_TOKEN_FILE: file },
        stderrIsTty: false,
      };
      const code = await runCli(["status", "req_AAAAAAAAAAAAAAAAAAAAAA"], io);
      expect(code).toBe(1);
      expect(err.join("")).toMatch(/^writ status: token_unavailable: /);
      expect(err.join("")).toMatch(expected);
      expect(err.join("")).not.toContain("secret-ish");
    }
  });

  it("a failing or useless provider is token_unavailable, without echoing anything", async () => {
    const throwing = createWritClient({
      url: url(),
      tokenProvider: () => {
        throw new Error("metadata server down: secret-ish detail");
      },
    });
    const error = await throwing.get("req_AAAAAAAAAAAAAAAAAAAAAA").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritApiError);
    expect(error).toMatchObject({ code: "token_unavailable", status: 0 });
    expect((error as Error).message).not.toContain("secret-ish");
    const garbage = createWritClient({ url: url(), tokenProvider: () => "two words" });
    await expect(garbage.get("req_AAAAAAAAAAAAAAAAAAAAAA")).rejects.toMatchObject({
      code: "token_unavailable",
    });
    // A provider token writ refuses is reported with writ's code.
    const wrongAudience = createWritClient({
      url: url(),
      tokenProvider: () => github.sign(ghClaims({ aud: "nope" })),
    });
    await expect(wrongAudience.get("req_AAAAAAAAAAAAAAAAAAAAAA")).rejects.toMatchObject({
      code: "oidc_audience_mismatch",
      status: 401,
    });
    expect(() =>
      createWritClient({
        url: url(),
        key: "writ_agent_x",
        tokenProvider: () => "x",
      } as never),
    ).toThrow(TypeError);
  });
});

describe("OIDC workload identity: a token issued in the future", () => {
  const nowMs = Date.parse("2026-03-01T12:00:00Z");
  let jwks: Server;
  let issuer: string;
  let signingKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    signingKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" };
    jwks = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    issuer = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    jwks?.closeAllConnections();
    await new Promise<void>((resolve) => (jwks ? jwks.close(() => resolve()) : resolve()));
  });

  // Without nbf, as some issuers sign: only iat says when the token was made
  // (the shared loopback issuer always sets nbf, which is checked anyway).
  function issuedAt(iatSeconds: number): Promise<string> {
    return new SignJWT({ iss: issuer, aud: "writ-test", sub: "x" })
      .setProtectedHeader({ alg: "ES256", kid: "ec-1" })
      .setIssuedAt(iatSeconds)
      .setExpirationTime(iatSeconds + 7200)
      .sign(signingKey);
  }

  it("is refused beyond the issuer's clock tolerance, accepted within it", async () => {
    const oidc = createOidcAuthenticator({
      issuers: [
        OidcIssuerConfig.parse({
          issuer,
          jwks_uri: `${issuer}/jwks`,
          audience: "writ-test",
          algorithms: ["ES256"],
          clock_tolerance_seconds: 10,
          agent: { id: "future:{sub}", owner: "alice" },
          require: { sub: "x" },
        }),
      ],
      clock: { now: () => nowMs },
    });
    const nowSeconds = nowMs / 1000;
    await expect(oidc.authenticate(await issuedAt(nowSeconds + 3600))).rejects.toMatchObject({
      code: "oidc_token_expired",
      message: "The token is not valid yet.",
    });
    await expect(oidc.authenticate(await issuedAt(nowSeconds + 11))).rejects.toMatchObject({
      code: "oidc_token_expired",
    });
    await expect(oidc.authenticate(await issuedAt(nowSeconds + 10))).resolves.toMatchObject({
      id: "future:x",
    });
  });
});

describe("an issuer whose discovery document never ends", () => {
  let endless: Server | undefined;
  let port = 0;
  let sent = 0;

  beforeAll(async () => {
    // Chunked (no Content-Length): the body streams on as long as it is read.
    endless = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      const more = () => {
        while (!res.destroyed && sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      res.write('{"issuer": "');
      more();
    });
    await new Promise<void>((resolve) => endless?.listen(0, "127.0.0.1", resolve));
    port = (endless.address() as AddressInfo).port;
  });

  afterAll(async () => {
    endless?.closeAllConnections();
    await new Promise<void>((resolve) => (endless ? endless.close(() => resolve()) : resolve()));
  });

  it("is refused after the first 64 KiB, without reading (or holding) the rest", async () => {
    const issuer = `http://127.0.0.1:${port}`;
    const oidc = createOidcAuthenticator({
      issuers: [
        OidcIssuerConfig.parse({
          issuer,
          audience: "writ-test",
          agent: { id: "endless:{sub}", owner: "alice" },
          require: { sub: "x" },
        }),
      ],
      clock: { now: () => Date.now() },
    });
    const token = await new SignJWT({ iss: issuer, aud: "writ-test", sub: "x" })
      .setProtectedHeader({ alg: "ES256", kid: "k" })
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign((await generateKeyPair("ES256")).privateKey);
    await expect(oidc.authenticate(token)).rejects.toMatchObject({
      code: "oidc_issuer_unavailable",
    });
    // The server wrote what the socket took before writ hung up: far from all of it.
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });
});

describe("an issuer that moves its keys to a new jwks_uri", () => {
  let moving: Server | undefined;
  let issuer = "";
  let where = "/keys-a";
  let discoveries = 0;
  type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
  const pairs = new Map<string, KeyPair>();

  beforeAll(async () => {
    for (const name of ["/keys-a", "/keys-b"]) {
      pairs.set(name, await generateKeyPair("ES256", { extractable: true }));
    }
    moving = createHttpServer(async (req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/.well-known/openid-configuration") {
        discoveries++;
        res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}${where}` }));
        return;
      }
      const pair = pairs.get(req.url ?? "");
      if (pair === undefined) {
        res.statusCode = 404;
        res.end("{}");
        return;
      }
      const jwk = await exportJWK(pair.publicKey);
      res.end(JSON.stringify({ keys: [{ ...jwk, kid: req.url?.slice(1), alg: "ES256" }] }));
    });
    await new Promise<void>((resolve) => moving?.listen(0, "127.0.0.1", resolve));
    issuer = `http://127.0.0.1:${(moving.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    moving?.closeAllConnections();
    await new Promise<void>((resolve) => (moving ? moving.close(() => resolve()) : resolve()));
  });

  /** An authenticator trusting the moving issuer, on a clock the test moves, and a signer. */
  function trusting() {
    const clock = { at: Date.now(), now: () => clock.at };
    const oidc = createOidcAuthenticator({
      issuers: [
        OidcIssuerConfig.parse({
          issuer,
          audience: "writ-test",
          agent: { id: "moving:{sub}", owner: "alice" },
          require: { sub: "x" },
        }),
      ],
      clock,
    });
    const token = (keys: string) =>
      new SignJWT({ iss: issuer, aud: "writ-test", sub: "x" })
        .setProtectedHeader({ alg: "ES256", kid: keys.slice(1) })
        .setIssuedAt(Math.floor(clock.at / 1000))
        .setExpirationTime(Math.floor(clock.at / 1000) + 300)
        .sign((pairs.get(keys) as KeyPair).privateKey);
    return { oidc, token, clock };
  }

  it("is followed within the hour, without a restart", async () => {
    const { oidc, token, clock } = trusting();

    await expect(oidc.authenticate(await token("/keys-a"))).resolves.toMatchObject({
      id: "moving:x",
    });
    // The issuer moves its keys; the discovery read an hour ago still points at the old set.
    where = "/keys-b";
    await expect(oidc.authenticate(await token("/keys-b"))).rejects.toMatchObject({
      code: expect.stringMatching(/^oidc_/),
    });
    expect(discoveries).toBe(1);
    clock.at += DISCOVERY_REFRESH_MS;
    await expect(oidc.authenticate(await token("/keys-b"))).resolves.toMatchObject({
      id: "moving:x",
    });
    expect(discoveries).toBe(2);
  });

  it("keeps the last good discovery while a new read fails", async () => {
    where = "/keys-a";
    const { oidc, token, clock } = trusting();
    const signed = () => token("/keys-a");
    await expect(oidc.authenticate(await signed())).resolves.toMatchObject({ id: "moving:x" });
    // The discovery now names a key set over plain http on another host: refused.
    where = "@evil.example/keys";
    clock.at += DISCOVERY_REFRESH_MS;
    await expect(oidc.authenticate(await signed())).resolves.toMatchObject({ id: "moving:x" });
  });
});

describe("an issuer whose key set cannot be read", () => {
  let flaky: Server | undefined;
  let issuer = "";
  let answer: "unavailable" | "garbage" | "keys" = "unavailable";
  let fetches = 0;
  let pair: Awaited<ReturnType<typeof generateKeyPair>>;

  beforeAll(async () => {
    pair = await generateKeyPair("ES256", { extractable: true });
    flaky = createHttpServer(async (req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url !== "/keys") {
        res.statusCode = 404;
        res.end("{}");
        return;
      }
      fetches++;
      if (answer === "unavailable") {
        res.statusCode = 503;
        res.end("{}");
      } else if (answer === "garbage") {
        res.end("<html>maintenance</html>");
      } else {
        const jwk = await exportJWK(pair.publicKey);
        res.end(JSON.stringify({ keys: [{ ...jwk, kid: "k1", alg: "ES256" }] }));
      }
    });
    await new Promise<void>((resolve) => flaky?.listen(0, "127.0.0.1", resolve));
    issuer = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    flaky?.closeAllConnections();
    await new Promise<void>((resolve) => (flaky ? flaky.close(() => resolve()) : resolve()));
  });

  it("is asked again after 30 s, not once for every token that names it", async () => {
    const clock = { at: Date.now(), now: () => clock.at };
    const oidc = createOidcAuthenticator({
      issuers: [
        OidcIssuerConfig.parse({
          issuer,
          jwks_uri: `${issuer}/keys`,
          audience: "writ-test",
          algorithms: ["ES256"],
          agent: { id: "flaky:{sub}", owner: "alice" },
          require: { sub: "x" },
        }),
      ],
      clock,
    });
    // Anyone can send tokens naming a trusted issuer: while its key set cannot
    // be read, they must not each make writ ask it again.
    const token = () =>
      new SignJWT({ iss: issuer, aud: "writ-test", sub: "x" })
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setIssuedAt(Math.floor(clock.at / 1000))
        .setExpirationTime(Math.floor(clock.at / 1000) + 300)
        .sign(pair.privateKey);
    for (const failure of ["unavailable", "garbage"] as const) {
      answer = failure;
      fetches = 0;
      for (let i = 0; i < 5; i++) {
        await expect(oidc.authenticate(await token())).rejects.toMatchObject({
          code: "oidc_issuer_unavailable",
        });
      }
      expect(fetches).toBe(1);
      clock.at += 30_000;
    }
    answer = "keys";
    fetches = 0;
    await expect(oidc.authenticate(await token())).resolves.toMatchObject({ id: "flaky:x" });
    await expect(oidc.authenticate(await token())).resolves.toMatchObject({ id: "flaky:x" });
    expect(fetches).toBe(1);
  });
});
