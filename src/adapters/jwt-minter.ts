import { createHash, sign } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose";
import { WritError } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import type { AccessRequest } from "../domain/request.js";
import type { Minted, Minter, PresentedToken, TokenReader } from "../ports/minter.js";
import type { JwtKeyRing, SigningKey } from "./jwt-keys.js";

/** The RFC 9396 `authorization_details` entry type writ uses. */
export const AUTHORIZATION_DETAILS_TYPE = "writ_action";

export interface JwtOptions {
  keys: JwtKeyRing;
  /** The `iss` claim; also required of a presented token. */
  issuer: string;
  /** Allowed clock skew when verifying a signature, in seconds (default 5). */
  clockToleranceSeconds?: number;
}

interface AuthorizationDetail {
  type: string;
  actions: string[];
  locations: string[];
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** SHA-256 of a token's exact text, base64url: recorded at issue, compared at consume. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url");
}

/**
 * Signs a compact JWS with Node's own crypto: writ signs only tokens it builds
 * itself, from fixed fields, so nothing untrusted is parsed here, and the
 * private key is a Node key object imported once. (jose's WebCrypto path costs
 * several times more per signature; verification stays with jose.) The
 * signature is computed on libuv's thread pool (`sign` with a callback), not
 * on the event loop, which serves every other call meanwhile.
 */
function signJwt(key: SigningKey, header: object, payload: object): Promise<string> {
  const input = `${base64url(header)}.${base64url(payload)}`;
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, signature: Buffer) => {
      if (error !== null) reject(error);
      else resolve(`${input}.${signature.toString("base64url")}`);
    };
    if (key.alg === "EdDSA") sign(null, Buffer.from(input), key.privateKey, done);
    else {
      sign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" }, done);
    }
  });
}

/** Mints a signed JWT bound to the request's one action on one resource, for one audience. */
export function createJwtMinter(options: JwtOptions): Minter {
  return {
    type: "jwt",
    async mint(request: AccessRequest, now: number): Promise<Minted> {
      if (request.audience === undefined) {
        throw new WritError("audience_required", "A JWT credential needs an audience.");
      }
      const key = options.keys.active;
      const jti = newId("jti");
      const iat = Math.floor(now / 1000);
      const exp = iat + request.grantedTtlSeconds;
      const detail: AuthorizationDetail = {
        type: AUTHORIZATION_DETAILS_TYPE,
        actions: [request.action],
        locations: [request.resource],
      };
      const token = await signJwt(
        key,
        { alg: key.alg, kid: key.kid, typ: "JWT" },
        {
          iss: options.issuer,
          sub: request.agentId,
          aud: request.audience,
          jti,
          iat,
          nbf: iat,
          exp,
          authorization_details: [detail],
          request_id: request.id,
        },
      );
      return {
        credential: { type: "jwt", token, expiresAt: exp * 1000 },
        record: {
          type: "jwt",
          id: jti,
          issuedAt: now,
          expiresAt: exp * 1000,
          digest: tokenDigest(token),
        },
      };
    },
  };
}

function invalid(message: string): WritError {
  return new WritError("token_invalid", message);
}

/** Longest token read; writ's own are well under 1 KiB. */
const MAX_TOKEN_LENGTH = 8192;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Reads presented writ JWTs (see `TokenReader`): the compact form, an algorithm
 * pinned to the active key's, a key id of the ring, the issuer and writ's claims.
 * The signature is left to the digest binding at consume, which only the exact
 * token writ issued can pass; `verify` checks it for credentials recorded
 * without a digest.
 */
export function createJwtTokenReader(options: JwtOptions): TokenReader {
  const algorithm = options.keys.active.alg;
  return {
    read(token): PresentedToken {
      if (token.length > MAX_TOKEN_LENGTH) throw invalid("The token is too long.");
      if (!COMPACT_JWS.test(token)) throw invalid("The token is not a signed JWT.");
      let header: ReturnType<typeof decodeProtectedHeader>;
      let payload: ReturnType<typeof decodeJwt>;
      try {
        header = decodeProtectedHeader(token);
        payload = decodeJwt(token);
      } catch {
        throw invalid("The token is not a valid writ token.");
      }
      if (
        header.alg !== algorithm ||
        typeof header.kid !== "string" ||
        options.keys.byKid(header.kid) === undefined
      ) {
        throw invalid("The token was not signed by a writ key.");
      }
      const details = payload.authorization_details;
      const detail =
        Array.isArray(details) && details.length === 1
          ? (details[0] as Partial<AuthorizationDetail>)
          : undefined;
      const { iss, sub, aud, jti, exp, iat } = payload;
      if (
        iss !== options.issuer ||
        typeof sub !== "string" ||
        typeof aud !== "string" ||
        typeof jti !== "string" ||
        typeof exp !== "number" ||
        typeof iat !== "number" ||
        detail?.type !== AUTHORIZATION_DETAILS_TYPE ||
        detail.actions?.length !== 1 ||
        detail.locations?.length !== 1 ||
        typeof payload.request_id !== "string"
      ) {
        throw invalid("The token does not carry a writ authorization.");
      }
      return {
        claims: {
          sub,
          aud,
          jti,
          exp,
          requestId: payload.request_id,
          action: String(detail.actions[0]),
          resource: String(detail.locations[0]),
        },
        digest: tokenDigest(token),
      };
    },

    async verify(token, now) {
      try {
        await jwtVerify(
          token,
          async (header) => {
            const key = header.kid === undefined ? undefined : options.keys.byKid(header.kid);
            if (key === undefined) throw invalid("The token was not signed by a writ key.");
            return key.publicKey;
          },
          {
            algorithms: [algorithm],
            issuer: options.issuer,
            currentDate: new Date(now),
            clockTolerance: options.clockToleranceSeconds ?? 5,
            requiredClaims: ["sub", "aud", "jti", "exp", "iat"],
          },
        );
      } catch (error) {
        if (error instanceof WritError) throw error;
        if (error instanceof joseErrors.JWTExpired) throw invalid("The token has expired.");
        if (error instanceof joseErrors.JOSEError) {
          throw invalid("The token is not a valid writ token.");
        }
        throw error;
      }
    },
  };
}
