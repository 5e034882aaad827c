import { generateKeyPair, SignJWT } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  issuedToken,
  keyOf,
  type RequestBody,
  S3_READ,
  UNKNOWN_REQUEST_ID,
} from "../support/api.js";
import { type ExtraIdentities, extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/** The demo writ plus `extra` principals, whose keys are merged into `t.keys`. */
async function startWith(extra: ExtraIdentities): Promise<TestWrit> {
  const { overrides, keys } = extraIdentities(extra);
  const t = await startTestWrit(overrides);
  Object.assign(t.keys, keys);
  return t;
}

describe("every API error code, provoked", () => {
  let t: TestWrit;
  let agent: string;
  beforeEach(async () => {
    t = await startWith({
      agents: [{ id: "other-agent", owner: "zed" }],
      reviewers: [
        { id: "erin", groups: ["finance"] },
        { id: "dave", groups: ["data-owners"] },
      ],
      resource_servers: [{ id: "ledger-api", audience: "ledger-api" }],
    });
    agent = keyOf(t, "report-agent");
  });
  afterEach(async () => {
    await t.close();
  });

  const post = (path: string, who: string, body?: unknown) =>
    t.call("POST", path, { key: keyOf(t, who), ...(body !== undefined ? { body } : {}) });
  const approve = (id: string, who: string) => post(`/v1/requests/${id}/approve`, who, {});
  const deny = (id: string, who: string) =>
    post(`/v1/requests/${id}/deny`, who, { reason: "not this quarter" });
  const collect = (id: string, who = "report-agent") => post(`/v1/requests/${id}/credential`, who);
  const cancel = (id: string, who = "report-agent") => post(`/v1/requests/${id}/cancel`, who);
  const consume = (token: string, who = "billing-api") =>
    post("/v1/tokens/consume", who, { token });
  const read = (id: string, who = "report-agent") =>
    t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, who) });

  describe("policy_denied", () => {
    it("403 naming the forbid, with the denied request and its events recorded", async () => {
      const res = await t.call("POST", "/v1/requests", {
        key: agent,
        body: { action: "iam:AttachRolePolicy", resource: "arn:aws:iam::1:role/x", audience: "a" },
      });
      const error = await expectError(res, 403, "policy_denied");
      expect(error.message).toContain("no-iam-attach-role-policy");
      expect(error.details?.policies).toEqual(["no-iam-attach-role-policy"]);
      const id = error.details?.request_id as string;
      expect(id).toMatch(/^req_/);

      const recorded = await expectJson<RequestBody>(await read(id, "dana"), 200);
      expect(recorded.status).toBe("denied");
      const events = await allEvents(t, { request_id: id });
      expect(events.map((e) => e.type)).toEqual([
        "request.created",
        "request.decided",
        "request.denied",
      ]);
      expect(events[1]?.data).toMatchObject({
        effect: "deny",
        policies: ["no-iam-attach-role-policy"],
      });
    });

    it("403 when no policy permits the action, saying so", async () => {
      const res = await t.call("POST", "/v1/requests", {
        key: agent,
        body: { ...S3_READ, resource: "arn:aws:s3:::payroll/2026.csv" },
      });
      const error = await expectError(res, 403, "policy_denied");
      expect(error.details?.policies).toEqual([]);
      expect(error.message).toMatch(/no policy permits/);
      const types = (await allEvents(t, { request_id: error.details?.request_id as string })).map(
        (e) => e.type,
      );
      expect(types).toEqual(["request.created", "request.decided", "request.denied"]);
    });

    it("the prefix pattern does not match a bucket that merely starts the same", async () => {
      const res = await t.call("POST", "/v1/requests", {
        key: agent,
        body: { ...S3_READ, resource: "arn:aws:s3:::demo-reports-private/q3.csv" },
      });
      await expectError(res, 403, "policy_denied");
    });
  });

  describe("422s on creation", () => {
    it("reason_required without a reason, or with a blank one; nothing is recorded", async () => {
      const { reason: _reason, ...withoutReason } = CUSTOMERS_EXPORT;
      for (const body of [withoutReason, { ...withoutReason, reason: "   " }]) {
        const error = await expectError(
          await t.call("POST", "/v1/requests", { key: agent, body }),
          422,
          "reason_required",
        );
        expect(error.details?.policies).toEqual(["customers-export"]);
      }
      expect(await allEvents(t)).toEqual([]);
    });

    it("audience_required for a JWT without an audience", async () => {
      const { audience: _audience, ...body } = S3_READ;
      await expectError(
        await t.call("POST", "/v1/requests", { key: agent, body }),
        422,
        "audience_required",
      );
      expect(await allEvents(t)).toEqual([]);
    });

    it("unsupported_credential_type when no minter issues it", async () => {
      await expectError(
        await t.call("POST", "/v1/requests", {
          key: agent,
          body: { ...S3_READ, credential: "aws" },
        }),
        422,
        "unsupported_credential_type",
      );
    });
  });

  describe("review refusals", () => {
    it("self_approval_forbidden for the agent's owner, on approve and deny", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await expectError(await approve(id, "alice"), 403, "self_approval_forbidden");
      await expectError(await deny(id, "alice"), 403, "self_approval_forbidden");
      const after = await expectJson<RequestBody>(await read(id), 200);
      expect(after).toMatchObject({ status: "pending", reviews: [] });
    });

    it("self_approval_forbidden for the person the agent acts for", async () => {
      const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, on_behalf_of: "bob" });
      await expectError(await approve(id, "bob"), 403, "self_approval_forbidden");
      await expectError(await deny(id, "bob"), 403, "self_approval_forbidden");
      await approveAs(t, "carol", id);
      await approveAs(t, "dave", id);
    });

    it("self_approval_forbidden for a reviewer holding the agent's own id", async () => {
      // Ids are unique per kind only, so a reviewer may share the agent's id.
      const { overrides, keys } = extraIdentities({
        reviewers: [{ id: "report-agent", groups: ["data-owners"] }],
      });
      const s = await startTestWrit(overrides);
      try {
        const { id } = await createRequest(s, CUSTOMERS_EXPORT);
        await expectError(
          await s.call("POST", `/v1/requests/${id}/approve`, {
            key: keys["report-agent"] ?? "",
            body: {},
          }),
          403,
          "self_approval_forbidden",
        );
      } finally {
        await s.close();
      }
    });

    it("not_an_approver for a reviewer outside the named groups", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const error = await expectError(await approve(id, "erin"), 403, "not_an_approver");
      expect(error.details?.groups).toEqual(["data-owners"]);
      await expectError(await deny(id, "erin"), 403, "not_an_approver");
    });

    it("already_reviewed for a second approval by the same person, who may still deny", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      await expectError(await approve(id, "bob"), 409, "already_reviewed");
      const after = await expectJson<RequestBody>(await read(id), 200);
      expect(after).toMatchObject({ status: "pending", pending_approvals: 1 });
      const denied = await expectJson<RequestBody>(await deny(id, "bob"), 200);
      expect(denied).toMatchObject({ status: "denied" });
    });

    it("request_not_pending after approval", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      await approveAs(t, "carol", id);
      await expectError(await approve(id, "dave"), 409, "request_not_pending");
      await expectError(await deny(id, "dave"), 409, "request_not_pending");
    });

    it("request_not_pending for an s3 read approved by policy", async () => {
      const { id } = await createRequest(t, S3_READ);
      await expectError(await approve(id, "bob"), 409, "request_not_pending");
    });

    it("request_not_pending after a deny: one deny ends the request", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      const denied = await expectJson<RequestBody>(await deny(id, "carol"), 200);
      expect(denied.status).toBe("denied");
      await expectError(await approve(id, "dave"), 409, "request_not_pending");
    });

    it("request_not_pending after a cancel, for reviews and a second cancel", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const cancelled = await expectJson<RequestBody>(await cancel(id), 200);
      expect(cancelled.status).toBe("cancelled");
      await expectError(await approve(id, "bob"), 409, "request_not_pending");
      await expectError(await cancel(id), 409, "request_not_pending");
    });

    it("request_not_pending after the approval deadline, even before any sweep", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      t.clock.advance(900);
      const error = await expectError(await approve(id, "carol"), 409, "request_not_pending");
      expect(error.details?.status).toBe("expired");
      const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
      expect(types).not.toContain("request.approved");
      expect(types.at(-1)).toBe("request.expired");
    });
  });

  describe("collect refusals", () => {
    it("approval_pending while reviewers have not decided", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      await expectError(await collect(id), 409, "approval_pending");
    });

    it("request_denied after a reviewer's deny and after a policy deny", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await expectJson(await deny(id, "bob"), 200);
      await expectError(await collect(id), 403, "request_denied");

      const denied = await expectError(
        await t.call("POST", "/v1/requests", {
          key: agent,
          body: {
            action: "iam:AttachRolePolicy",
            resource: "arn:aws:iam::1:role/x",
            audience: "a",
          },
        }),
        403,
        "policy_denied",
      );
      await expectError(await collect(denied.details?.request_id as string), 403, "request_denied");
    });

    it("request_cancelled after the agent cancels an approved request", async () => {
      const { id } = await createRequest(t, S3_READ);
      await expectJson(await cancel(id), 200);
      await expectError(await collect(id), 410, "request_cancelled");
    });

    it("request_expired when an approved request is not collected within the window", async () => {
      const { id } = await createRequest(t, S3_READ);
      t.clock.advance(299);
      const stillOpen = await expectJson<RequestBody>(await read(id), 200);
      expect(stillOpen.status).toBe("approved");
      t.clock.advance(1);
      await expectError(await collect(id), 410, "request_expired");
      const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
      expect(types).toContain("request.expired");
      expect(types).not.toContain("credential.issued");
    });

    it("request_expired when a pending request times out", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      t.clock.advance(901);
      await expectError(await collect(id), 410, "request_expired");
    });

    it("credential_already_issued on a second collect", async () => {
      const { id } = await createRequest(t, S3_READ);
      await collectToken(t, id);
      await expectError(await collect(id), 410, "credential_already_issued");
      const types = (await allEvents(t, { type: "credential.issued" })).map((e) => e.request_id);
      expect(types).toEqual([id]);
    });
  });

  describe("token_invalid", () => {
    const parts = (token: string) => token.split(".") as [string, string, string];

    it("for garbage, with the challenge a 401 must carry", async () => {
      for (const token of ["garbage", "a.b.c", "....", "x".repeat(8192)]) {
        const res = await consume(token);
        await expectError(res, 401, "token_invalid");
        expect(res.headers.get("www-authenticate")).toBe(
          'Bearer realm="writ", error="invalid_token"',
        );
      }
    });

    it("for a flipped character in the signature", async () => {
      const { token } = await issuedToken(t);
      const [h, p, s] = parts(token);
      const flipped = `${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
      await expectError(await consume(`${h}.${p}.${flipped}`), 401, "token_invalid");
      // The genuine token is still unused: a forgery does not burn it.
      await expectJson(await consume(token), 200);
    });

    it("for a changed payload under the original signature", async () => {
      const { token } = await issuedToken(t);
      const [h, p, s] = parts(token);
      const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
      claims.authorization_details[0].actions = ["s3:DeleteObject"];
      const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
      await expectError(await consume(`${h}.${forged}.${s}`), 401, "token_invalid");
    });

    it("once the token has expired", async () => {
      const { token } = await issuedToken(t);
      t.clock.advance(300 + 6);
      const error = await expectError(await consume(token), 401, "token_invalid");
      expect(error.message).toMatch(/expired/);
    });

    it("for an unsigned token (alg none)", async () => {
      const { token } = await issuedToken(t);
      const [, p] = parts(token);
      const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
      await expectError(await consume(`${none}.${p}.`), 401, "token_invalid");
    });

    it("for a token signed by another key, under writ's kid or its own", async () => {
      const { token } = await issuedToken(t);
      const real = JSON.parse(Buffer.from(parts(token)[0], "base64url").toString("utf8"));
      const claims = JSON.parse(Buffer.from(parts(token)[1], "base64url").toString("utf8"));
      const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
      for (const kid of [real.kid as string, "attacker-key"]) {
        const forged = await new SignJWT(claims)
          .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
          .sign(privateKey);
        await expectError(await consume(forged), 401, "token_invalid");
      }
      await expectJson(await consume(token), 200);
    });

    it("for a token signed with a symmetric key named by writ's kid (alg confusion)", async () => {
      const { token } = await issuedToken(t);
      const real = JSON.parse(Buffer.from(parts(token)[0], "base64url").toString("utf8"));
      const claims = JSON.parse(Buffer.from(parts(token)[1], "base64url").toString("utf8"));
      const jwks = (await (await t.call("GET", "/.well-known/jwks.json")).json()) as {
        keys: { x: string }[];
      };
      const secret = new TextEncoder().encode(jwks.keys[0]?.x);
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid: real.kid, typ: "JWT" })
        .sign(secret);
      await expectError(await consume(forged), 401, "token_invalid");
    });
  });

  it("token_replayed on a second consume, recorded as token.replay_blocked", async () => {
    const { id, token } = await issuedToken(t);
    await expectJson(await consume(token), 200);
    await expectError(await consume(token), 409, "token_replayed");
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types.slice(-2)).toEqual(["token.used", "token.replay_blocked"]);
  });

  it("token_invalid for the genuine token after its credential ended, recorded as token.rejected", async () => {
    const ended = {
      // A reviewer's kill switch, the agent's own report, and the TTL passing.
      revoked: async (id: string) =>
        expectJson(
          await post(`/v1/requests/${id}/revoke`, "bob", { reason: "leaked in a log" }),
          200,
        ),
      completed: async (id: string) =>
        expectJson(await post(`/v1/requests/${id}/complete`, "report-agent"), 200),
      expired: async () => t.clock.advance(3600),
    };
    for (const [status, end] of Object.entries(ended)) {
      const { id, token } = await issuedToken(t);
      await end(id);
      const refused = await expectError(await consume(token), 401, "token_invalid");
      expect(refused.message).toContain(status);
      const events = await allEvents(t, { request_id: id });
      expect(events.at(-1)).toMatchObject({
        type: "token.rejected",
        actor: { kind: "resource_server", id: "billing-api" },
        data: { resource_server: "billing-api", status },
      });
      expect(events.filter((e) => e.type === "token.used")).toEqual([]);
    }
    // A token writ never issued is recorded nowhere: anyone can send one.
    const { id, token } = await issuedToken(t);
    const altered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
    await expectError(await consume(altered), 401, "token_invalid");
    expect((await allEvents(t, { request_id: id })).map((e) => e.type)).not.toContain(
      "token.rejected",
    );
  });

  it("audience_mismatch when another audience's server presents the token", async () => {
    const { id, token } = await issuedToken(t);
    await expectError(await consume(token, "ledger-api"), 403, "audience_mismatch");
    // The token stays usable by the server it was minted for.
    await expectJson(await consume(token), 200);
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types).not.toContain("token.replay_blocked");
  });

  describe("not_found", () => {
    it("for an unknown request id, on every route that takes one", async () => {
      await expectError(await read(UNKNOWN_REQUEST_ID), 404, "not_found");
      await expectError(await read(UNKNOWN_REQUEST_ID, "dana"), 404, "not_found");
      await expectError(await approve(UNKNOWN_REQUEST_ID, "bob"), 404, "not_found");
      await expectError(await deny(UNKNOWN_REQUEST_ID, "bob"), 404, "not_found");
      await expectError(await cancel(UNKNOWN_REQUEST_ID), 404, "not_found");
      await expectError(await collect(UNKNOWN_REQUEST_ID), 404, "not_found");
    });

    it("for another agent's request, so that ids cannot be probed", async () => {
      const { id } = await createRequest(t, S3_READ);
      await expectError(await read(id, "other-agent"), 404, "not_found");
      await expectError(
        await t.call("GET", `/v1/requests/${id}?wait=5`, { key: keyOf(t, "other-agent") }),
        404,
        "not_found",
      );
      await expectError(await collect(id, "other-agent"), 404, "not_found");
      await expectError(await cancel(id, "other-agent"), 404, "not_found");
      // Nothing happened to it.
      await collectToken(t, id);
    });

    it("for an unknown route", async () => {
      await expectError(await t.call("GET", "/v1/nothing-here", { key: agent }), 404, "not_found");
      await expectError(await t.call("GET", "/nothing-here"), 404, "not_found");
    });
  });

  describe("wrong_principal_kind", () => {
    it("for each route called with the wrong kind of key", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const { token } = await issuedToken(t);
      const cases: [string, Promise<Response>][] = [
        ["reviewer creates", post("/v1/requests", "bob", S3_READ)],
        ["auditor creates", post("/v1/requests", "dana", S3_READ)],
        ["reviewer collects", collect(id, "bob")],
        ["auditor collects", collect(id, "dana")],
        ["reviewer cancels", cancel(id, "bob")],
        ["agent approves", approve(id, "report-agent")],
        ["agent denies", deny(id, "report-agent")],
        ["auditor approves", approve(id, "dana")],
        ["resource server approves", approve(id, "billing-api")],
        ["resource server reads a request", read(id, "billing-api")],
        ["agent lists requests", t.call("GET", "/v1/requests", { key: agent })],
        ["agent lists events", t.call("GET", "/v1/events", { key: agent })],
        ["reviewer lists events", t.call("GET", "/v1/events", { key: keyOf(t, "bob") })],
        ["agent consumes", consume(token, "report-agent")],
        ["reviewer consumes", consume(token, "bob")],
      ];
      for (const [label, pending] of cases) {
        const res = await pending;
        expect(res.status, label).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code, label).toBe(
          "wrong_principal_kind",
        );
      }
      // None of that touched state: still pending with no reviews, token still fresh.
      const after = await expectJson<RequestBody>(await read(id), 200);
      expect(after).toMatchObject({ status: "pending", reviews: [] });
      await expectJson(await consume(token), 200);
    });

    it("before the route reads the body, the path or the query", async () => {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const get = (path: string, who: string) => t.call("GET", path, { key: keyOf(t, who) });
      // Each call is wrong twice over: the key's kind, and what it sends.
      const cases: [string, Promise<Response>][] = [
        ["reviewer creates, bad body", post("/v1/requests", "bob", { action: 5 })],
        ["auditor creates, empty body", post("/v1/requests", "dana", {})],
        ["resource server reads, bad wait", get(`/v1/requests/${id}?wait=soon`, "billing-api")],
        ["resource server reads, bad id", get("/v1/requests/nope", "billing-api")],
        ["agent lists requests, bad limit", get("/v1/requests?limit=0", "report-agent")],
        ["agent lists requests, unknown field", get("/v1/requests?x=1", "report-agent")],
        ["agent approves, bad body", post(`/v1/requests/${id}/approve`, "report-agent", { x: 1 })],
        ["agent approves, bad id", post("/v1/requests/nope/approve", "report-agent", {})],
        ["agent denies, no reason", post(`/v1/requests/${id}/deny`, "report-agent", {})],
        ["reviewer cancels, bad body", post(`/v1/requests/${id}/cancel`, "bob", { x: 1 })],
        ["auditor completes, bad body", post(`/v1/requests/${id}/complete`, "dana", { x: 1 })],
        ["reviewer collects, bad body", post(`/v1/requests/${id}/credential`, "bob", { x: 1 })],
        ["reviewer collects, bad id", post("/v1/requests/nope/credential", "bob")],
        ["agent revokes, no reason", post(`/v1/requests/${id}/revoke`, "report-agent", {})],
        ["reviewer consumes, no token", post("/v1/tokens/consume", "bob", {})],
        ["agent consumes, bad token", post("/v1/tokens/consume", "report-agent", { token: 5 })],
        ["agent lists events, bad limit", get("/v1/events?limit=0", "report-agent")],
        ["reviewer lists events, bad after", get("/v1/events?after=x", "bob")],
      ];
      const answers = [];
      for (const [label, pending] of cases) {
        const res = await pending;
        const body = (await res.json()) as { error: { code: string } };
        answers.push([label, res.status, body.error.code]);
      }
      expect(answers).toEqual(cases.map(([label]) => [label, 403, "wrong_principal_kind"]));
      const after = await expectJson<RequestBody>(await read(id), 200);
      expect(after).toMatchObject({ status: "pending", reviews: [] });
    });
  });

  describe("unauthenticated", () => {
    const longKey = `writ_agent_${"a".repeat(600)}`;
    const headers: [string, Record<string, string>][] = [
      ["missing header", {}],
      ["basic scheme", { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }],
      ["bearer without key", { authorization: "Bearer " }],
      ["bearer lowercase only", { authorization: "bearer" }],
      ["two tokens", { authorization: "Bearer a b" }],
      ["unknown key", { authorization: "Bearer writ_agent_not-a-real-key" }],
      ["key over 512 characters", { authorization: `Bearer ${longKey}` }],
      ["non-ASCII key", { authorization: "Bearer clé" }],
    ];
    for (const [label, header] of headers) {
      it(`401 with WWW-Authenticate for a ${label}`, async () => {
        for (const [method, path] of [
          ["GET", "/v1/requests"],
          ["POST", "/v1/requests"],
          ["GET", "/v1/events"],
          ["POST", "/v1/tokens/consume"],
        ] as const) {
          const res = await t.call(method, path, {
            headers: header,
            ...(method === "POST" ? { body: S3_READ } : {}),
          });
          await expectError(res, 401, "unauthenticated");
          expect(res.headers.get("www-authenticate")).toBe('Bearer realm="writ"');
        }
      });
    }

    it("reads the scheme in any case, and nothing else more loosely", async () => {
      const reviewer = keyOf(t, "bob");
      for (const authorization of [
        `bearer ${reviewer}`,
        `BEARER ${reviewer}`,
        `bEaReR ${reviewer}`,
      ]) {
        const res = await t.call("GET", "/v1/requests", { headers: { authorization } });
        expect(res.status, authorization.slice(0, 8)).toBe(200);
      }
      for (const authorization of [
        `Bearer  ${reviewer}`,
        `bearer  ${reviewer}`,
        `Basic ${reviewer}`,
        `Bearer ${reviewer.toUpperCase()}`,
        `Bearer\t${reviewer}`,
      ]) {
        const res = await t.call("GET", "/v1/requests", { headers: { authorization } });
        await expectError(res, 401, "unauthenticated");
      }
    });

    it("a real key relabelled with another kind's prefix is an unknown key", async () => {
      const relabelled = agent.replace(/^writ_agent_/, "writ_reviewer_");
      await expectError(
        await t.call("GET", "/v1/requests", { key: relabelled }),
        401,
        "unauthenticated",
      );
    });
  });

  describe("audit_unavailable and store_unavailable", () => {
    it("503 audit_unavailable when the audit log cannot record the change", async () => {
      const { id } = await createRequest(t, S3_READ);
      await t.writ.auditLog.close();
      await expectError(
        await t.call("POST", "/v1/requests", { key: agent, body: S3_READ }),
        503,
        "audit_unavailable",
      );
      await expectError(await collect(id), 503, "audit_unavailable");
    });

    it("no change happens when its audit record cannot be written (rule 3)", async () => {
      const { id } = await createRequest(t, S3_READ);
      await t.writ.auditLog.close();
      await expectError(await collect(id), 503, "audit_unavailable");
      const after = await expectJson<RequestBody>(await read(id), 200);
      expect(after.status).toBe("approved");
    });

    it("503 store_unavailable when the store cannot serve", async () => {
      await t.writ.broker.deps.store.close();
      await expectError(
        await t.call("POST", "/v1/requests", { key: agent, body: S3_READ }),
        503,
        "store_unavailable",
      );
    });
  });
});
