import { sign } from "node:crypto";
import { errors as joseErrors, jwtVerify } from "jose";
import { WritError } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import type { AccessRequest } from "../domain/request.js";
import type { Minted, Minter, TokenClaims, TokenVerifier } from "../ports/minter.js";
import type { JwtKeyRing, SigningKey } from "./jwt-keys.js";

/** The RFC 9396 `authorization_details` entry type writ uses. */
export const AUTHORIZATION_DETAILS_TYPE = "writ_action";

export interface JwtOptions {
  keys: JwtKeyRing;
  /** The `iss` claim; also required on verification. */
  issuer: string;
  /** Allowed clock skew when verifying, in seconds (default 5). */
  clockToleranceSeconds?: number;
}

interface AuthorizationDetail {
  type: string;
  actions: string[];
  locations: string[];
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * Signs a compact JWS with Node's own crypto: writ signs only tokens it builds
 * itself, from fixed fields, so nothing untrusted is parsed here, and the
 * private key is a Node key object imported once. (jose's WebCrypto path costs
 * several times more per signature; verification stays with jose.)
 */
function signJwt(key: SigningKey, header: object, payload: object): string {
  const input = `${base64url(header)}.${base64url(payload)}`;
  const signature =
    key.alg === "EdDSA"
      ? sign(null, Buffer.from(input), key.privateKey)
      : sign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
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
      const token = signJwt(
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
        record: { type: "jwt", id: jti, issuedAt: now, expiresAt: exp * 1000 },
      };
    },
  };
}

function invalid(message: string): WritError {
  return new WritError("token_invalid", message);
}

/** Verifies writ JWTs with the ring's keys, algorithms pinned to what the ring holds. */
export function createJwtVerifier(options: JwtOptions): TokenVerifier {
  const algorithms = [options.keys.active.alg];
  return {
    async verify(token, now): Promise<TokenClaims> {
      if (token.length > 8192) throw invalid("The token is too long.");
      let payload: Record<string, unknown>;
      try {
        const result = await jwtVerify(
          token,
          async (header) => {
            const key = header.kid === undefined ? undefined : options.keys.byKid(header.kid);
            if (key === undefined) throw invalid("The token was not signed by a writ key.");
            return key.publicKey;
          },
          {
            algorithms,
            issuer: options.issuer,
            currentDate: new Date(now),
            clockTolerance: options.clockToleranceSeconds ?? 5,
            requiredClaims: ["sub", "aud", "jti", "exp", "iat"],
          },
        );
        payload = result.payload;
      } catch (error) {
        if (error instanceof WritError) throw error;
        if (error instanceof joseErrors.JWTExpired) throw invalid("The token has expired.");
        if (error instanceof joseErrors.JOSEError)
          throw invalid("The token is not a valid writ token.");
        throw error;
      }
      const details = payload.authorization_details;
      const detail =
        Array.isArray(details) && details.length === 1
          ? (details[0] as Partial<AuthorizationDetail>)
          : undefined;
      const aud = payload.aud;
      if (
        detail?.type !== AUTHORIZATION_DETAILS_TYPE ||
        detail.actions?.length !== 1 ||
        detail.locations?.length !== 1 ||
        typeof payload.request_id !== "string" ||
        typeof aud !== "string"
      ) {
        throw invalid("The token does not carry a writ authorization.");
      }
      return {
        sub: payload.sub as string,
        aud,
        jti: payload.jti as string,
        exp: payload.exp as number,
        requestId: payload.request_id,
        action: String(detail.actions[0]),
        resource: String(detail.locations[0]),
      };
    },
  };
}
