import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type JwtAlgorithm, loadOrCreateKeyRing } from "../../src/adapters/jwt-keys.js";
import { createJwtMinter, createJwtVerifier } from "../../src/adapters/jwt-minter.js";
import { sampleRequest } from "./store-contract.js";

describe.each<JwtAlgorithm>(["EdDSA", "ES256"])("JWTs signed with %s", (alg) => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-jwt-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("verify with the published JWKS, bound to one action on one resource", async () => {
    const keys = await loadOrCreateKeyRing(join(dir, "jwt.json"), alg);
    const request = sampleRequest({ status: "approved", grantedTtlSeconds: 120 });
    const now = Date.parse("2026-01-15T09:00:00Z");
    const { credential, record } = await createJwtMinter({ keys, issuer: "writ" }).mint(
      request,
      now,
    );
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    expect(decodeProtectedHeader(credential.token)).toEqual({
      alg,
      kid: keys.active.kid,
      typ: "JWT",
    });
    const { payload } = await jwtVerify(credential.token, createLocalJWKSet(keys.jwks()), {
      algorithms: [alg],
      issuer: "writ",
      audience: "billing-api",
      currentDate: new Date(now),
    });
    expect(payload).toMatchObject({
      sub: "report-agent",
      jti: record.id,
      iat: now / 1000,
      exp: now / 1000 + 120,
      request_id: request.id,
      authorization_details: [
        { type: "writ_action", actions: ["db:export"], locations: ["db://prod/customers"] },
      ],
    });
    const claims = await createJwtVerifier({ keys, issuer: "writ" }).verify(credential.token, now);
    expect(claims).toMatchObject({ requestId: request.id, jti: record.id, aud: "billing-api" });
  });

  it("refuses a token whose payload was changed after signing", async () => {
    const keys = await loadOrCreateKeyRing(join(dir, "jwt.json"), alg);
    const now = Date.parse("2026-01-15T09:00:00Z");
    const { credential } = await createJwtMinter({ keys, issuer: "writ" }).mint(
      sampleRequest({ status: "approved" }),
      now,
    );
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    const [header, , signature] = credential.token.split(".");
    const forged = Buffer.from(JSON.stringify({ sub: "someone-else" })).toString("base64url");
    await expect(
      createJwtVerifier({ keys, issuer: "writ" }).verify(`${header}.${forged}.${signature}`, now),
    ).rejects.toMatchObject({ code: "token_invalid" });
  });
});
