import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type JwtAlgorithm, loadOrCreateKeyRing } from "../../src/adapters/jwt-keys.js";
import {
  createJwtMinter,
  createJwtTokenReader,
  tokenDigest,
} from "../../src/adapters/jwt-minter.js";
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
    const presented = createJwtTokenReader({ keys, issuer: "writ" }).read(credential.token);
    expect(presented.claims).toMatchObject({
      requestId: request.id,
      jti: record.id,
      aud: "billing-api",
    });
    // The record binds the exact token: the reader's digest is the one recorded.
    expect(record.digest).toBe(tokenDigest(credential.token));
    expect(presented.digest).toBe(record.digest);
  });

  it("gives a token whose payload was changed after signing another digest", async () => {
    const keys = await loadOrCreateKeyRing(join(dir, "jwt.json"), alg);
    const now = Date.parse("2026-01-15T09:00:00Z");
    const { credential, record } = await createJwtMinter({ keys, issuer: "writ" }).mint(
      sampleRequest({ status: "approved" }),
      now,
    );
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    const [header, payload, signature] = credential.token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: "someone-else" })).toString(
      "base64url",
    );
    const read = createJwtTokenReader({ keys, issuer: "writ" }).read(
      `${header}.${forged}.${signature}`,
    );
    expect(read.claims.sub).toBe("someone-else");
    expect(read.digest).not.toBe(record.digest);
  });

  it("refuses what is not a writ token: shape, algorithm, key id, issuer, claims", async () => {
    const keys = await loadOrCreateKeyRing(join(dir, "jwt.json"), alg);
    const now = Date.parse("2026-01-15T09:00:00Z");
    const { credential } = await createJwtMinter({ keys, issuer: "writ" }).mint(
      sampleRequest({ status: "approved" }),
      now,
    );
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    const [header, payload, signature] = credential.token.split(".") as [string, string, string];
    const json = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const reader = createJwtTokenReader({ keys, issuer: "writ" });
    const refused = [
      "",
      "garbage",
      `${header}.${payload}`,
      `${header}.${payload}.`,
      `${header}.${payload}.${signature}.x`,
      `${header}.${payload}.${"A".repeat(9000)}`,
      `${encode({ ...json(header), alg: "none" })}.${payload}.${signature}`,
      `${encode({ ...json(header), alg: "HS256" })}.${payload}.${signature}`,
      `${encode({ ...json(header), kid: "someone-elses" })}.${payload}.${signature}`,
      `${encode({ alg })}.${payload}.${signature}`,
      `${header}.${encode({ ...json(payload), iss: "not-writ" })}.${signature}`,
      `${header}.${encode({ ...json(payload), request_id: 7 })}.${signature}`,
      `${header}.${encode({ ...json(payload), authorization_details: [] })}.${signature}`,
      `${header}.${encode({ ...json(payload), exp: "later" })}.${signature}`,
      `${header}.${Buffer.from("not json").toString("base64url")}.${signature}`,
    ];
    for (const token of refused) {
      expect(() => reader.read(token), token.slice(0, 40)).toThrow(
        expect.objectContaining({ code: "token_invalid" }),
      );
    }
  });
});
