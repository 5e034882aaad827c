import { createRemoteJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from "jose";
import { createWritClient, type WritClient } from "./client.js";
import { isWritApiError } from "./errors.js";

/** The RFC 9396 `authorization_details` type of writ's grants. */
const AUTHORIZATION_DETAILS_TYPE = "writ_action";
const MAX_TOKEN_LENGTH = 8192;
/** The algorithms writ signs with; nothing else (no `none`, no HMAC) is accepted. */
const WRIT_ALGORITHMS = ["EdDSA", "ES256"] as const;
const MAX_CLOCK_TOLERANCE_SECONDS = 60;
const MAX_TIMEOUT_MS = 60_000;

/**
 * Why a token was refused. Each code has the HTTP status a resource server
 * should answer with, in {@link WritVerifyError.status}.
 * - `token_missing` (401): no bearer token;
 * - `token_invalid` (401): bad signature, unknown key, wrong algorithm, issuer
 *   or audience, malformed, or no longer valid at writ (revoked, completed; or
 *   refused while writ limits this resource server's refused tokens);
 * - `token_expired` (401): past its `exp` (or before its `nbf`);
 * - `token_replayed` (401): already used once; writ recorded the replay;
 * - `insufficient_scope` (403): a valid token for another action or resource;
 * - `writ_unavailable` (503): writ or its key set could not be reached, or did
 *   not answer in time, so nothing is let through.
 */
export const VERIFY_ERROR_CODES = [
  "token_missing",
  "token_invalid",
  "token_expired",
  "token_replayed",
  "insufficient_scope",
  "writ_unavailable",
] as const;

export type VerifyErrorCode = (typeof VERIFY_ERROR_CODES)[number];

const STATUS: Record<VerifyErrorCode, 401 | 403 | 503> = {
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  token_replayed: 401,
  insufficient_scope: 403,
  writ_unavailable: 503,
};

/** A refused token. Messages never contain the token. Branch on `code`. */
export class WritVerifyError extends Error {
  override readonly name = "WritVerifyError";
  readonly code: VerifyErrorCode;
  /** The HTTP status to answer with. */
  readonly status: 401 | 403 | 503;

  constructor(code: VerifyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = STATUS[code];
  }

  /** The body to answer with, in writ's error shape. */
  toJSON(): { error: { code: VerifyErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export interface WritVerifierOptions {
  /** The writ server, e.g. `https://writ.example.com`. */
  writUrl: string | URL;
  /** This resource server's audience: tokens issued for any other are refused. */
  audience: string;
  /** This resource server's writ key (`writ_rs_…`), used only to consume tokens. */
  resourceServerKey: string;
  /** Where writ's public keys are; default `<writUrl>/.well-known/jwks.json`. */
  jwksUrl?: string | URL;
  /** The `iss` writ signs with (its `issuer` setting); default `writ`. */
  issuer?: string;
  /** Accepted signature algorithms, a subset of EdDSA and ES256; default both. */
  algorithms?: readonly ("EdDSA" | "ES256")[];
  /** Allowed clock skew for `exp`/`nbf`, 0–60 seconds; default 5. */
  clockToleranceSeconds?: number;
  /**
   * How long to wait for writ's key set, and for writ's answer to a consume,
   * 1–60000 ms; default 5000. Past it the token is refused (`writ_unavailable`).
   */
  timeoutMs?: number;
  /** A `fetch` for the consume call (proxies, tests). */
  fetch?: typeof fetch;
}

/** What the route requires: exactly this action on exactly this resource. */
export interface RequiredGrant {
  action: string;
  resource: string;
}

/** A verified, consumed token: who may do what, once. */
export interface WritGrant {
  /** The agent the token was issued to. */
  agent: string;
  action: string;
  resource: string;
  requestId: string;
  jti: string;
  /** When the token expires (ms since the epoch). */
  expiresAt: number;
}

export interface WritVerifier {
  /**
   * Verifies `token` for exactly `required` and consumes it at writ, once.
   * Resolves with the grant; rejects with a {@link WritVerifyError}.
   */
  verify(token: string | undefined, required: RequiredGrant): Promise<WritGrant>;
}

interface Detail {
  type?: unknown;
  actions?: unknown;
  locations?: unknown;
}

/** The one action and resource a writ token grants, or undefined if it is not writ's shape. */
function grantOf(payload: JWTPayload): { action: string; resource: string } | undefined {
  const details = payload.authorization_details;
  if (!Array.isArray(details) || details.length !== 1) return undefined;
  const detail = details[0] as Detail | null;
  if (typeof detail !== "object" || detail === null) return undefined;
  const { type, actions, locations } = detail;
  if (type !== AUTHORIZATION_DETAILS_TYPE) return undefined;
  if (!Array.isArray(actions) || actions.length !== 1 || typeof actions[0] !== "string") {
    return undefined;
  }
  if (!Array.isArray(locations) || locations.length !== 1 || typeof locations[0] !== "string") {
    return undefined;
  }
  return { action: actions[0], resource: locations[0] };
}

function checkOptions(options: WritVerifierOptions) {
  if (typeof options.audience !== "string" || options.audience === "") {
    throw new TypeError("audience must be this resource server's audience");
  }
  const tolerance = options.clockToleranceSeconds ?? 5;
  if (!Number.isInteger(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_SECONDS) {
    throw new TypeError(
      `clockToleranceSeconds must be a whole number from 0 to ${MAX_CLOCK_TOLERANCE_SECONDS}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new TypeError(`timeoutMs must be a whole number from 1 to ${MAX_TIMEOUT_MS}`);
  }
  const algorithms = [...(options.algorithms ?? WRIT_ALGORITHMS)];
  if (
    algorithms.length === 0 ||
    algorithms.some((alg) => !(WRIT_ALGORITHMS as readonly string[]).includes(alg))
  ) {
    throw new TypeError(`algorithms must be a non-empty subset of ${WRIT_ALGORITHMS.join(", ")}`);
  }
  return { tolerance, timeoutMs, algorithms };
}

function explain(error: unknown): WritVerifyError {
  if (error instanceof WritVerifyError) return error;
  if (error instanceof joseErrors.JWTExpired) {
    return new WritVerifyError("token_expired", "The token has expired.");
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === "nbf") {
    return new WritVerifyError("token_expired", "The token is not valid yet.");
  }
  if (
    error instanceof joseErrors.JWKSTimeout ||
    error instanceof joseErrors.JWKSInvalid ||
    !(error instanceof joseErrors.JOSEError) ||
    error.code === "ERR_JOSE_GENERIC"
  ) {
    // No key set could be read: refuse, and say it is writ, not the token.
    return new WritVerifyError("writ_unavailable", "writ's keys could not be fetched.", {
      cause: error,
    });
  }
  return new WritVerifyError("token_invalid", "The token is not a valid writ token.");
}

/**
 * The resource-server side of writ, framework-free. `verify` checks the JWT
 * against writ's JWKS (algorithms pinned, issuer, audience, expiry), checks
 * that its `authorization_details` name exactly the action and resource the
 * route requires (before consuming, so a token for another route is not
 * burned), then consumes it at writ with the resource server's key: the first
 * use passes, any replay is `token_replayed`.
 */
export function createWritVerifier(options: WritVerifierOptions): WritVerifier {
  const { tolerance, timeoutMs, algorithms } = checkOptions(options);
  const client: WritClient = createWritClient({
    url: options.writUrl,
    key: options.resourceServerKey,
    ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
  });
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl ?? ".well-known/jwks.json", client.url), {
    timeoutDuration: timeoutMs,
    cooldownDuration: 30_000,
    cacheMaxAge: 10 * 60_000,
  });
  const issuer = options.issuer ?? "writ";

  return {
    async verify(token, required) {
      if (
        typeof required?.action !== "string" ||
        required.action === "" ||
        typeof required.resource !== "string" ||
        required.resource === ""
      ) {
        throw new TypeError("the required grant needs an action and a resource");
      }
      if (token === undefined || token === "") {
        throw new WritVerifyError(
          "token_missing",
          "Send the writ token as Authorization: Bearer <token>.",
        );
      }
      if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
        throw new WritVerifyError("token_invalid", "The token is not a valid writ token.");
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          algorithms,
          issuer,
          audience: options.audience,
          clockTolerance: tolerance,
          requiredClaims: ["sub", "jti", "exp", "iat"],
        }));
      } catch (error) {
        throw explain(error);
      }
      const grant = grantOf(payload);
      if (grant === undefined || typeof payload.request_id !== "string") {
        throw new WritVerifyError("token_invalid", "The token does not carry a writ grant.");
      }
      if (grant.action !== required.action || grant.resource !== required.resource) {
        throw new WritVerifyError(
          "insufficient_scope",
          "The token was issued for another action or resource.",
        );
      }
      let consumed: Awaited<ReturnType<WritClient["consume"]>>;
      try {
        // Bounded: a writ that takes the connection and never answers would
        // otherwise hold this route's request for minutes.
        consumed = await client.consume(token, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (error) {
        if (isWritApiError(error)) {
          if (error.code === "token_replayed") {
            throw new WritVerifyError(
              "token_replayed",
              "The token was already used; it is valid once.",
            );
          }
          if (error.code === "token_invalid" || error.code === "audience_mismatch") {
            throw new WritVerifyError("token_invalid", "writ no longer accepts this token.");
          }
          if (error.code === "rate_limited") {
            // writ limits only the tokens it refuses (used, or their credential
            // ended): this one will not be accepted, now or later.
            throw new WritVerifyError(
              "token_invalid",
              "writ refused this token (already used, or its credential ended) and is limiting this server's refused tokens.",
              { cause: error },
            );
          }
        }
        // Our own key refused, writ down, a bad answer: fail closed, and say so.
        throw new WritVerifyError("writ_unavailable", "writ could not confirm the token.", {
          cause: error,
        });
      }
      // writ's answer must be about the very token verified here.
      if (
        consumed.jti !== payload.jti ||
        consumed.action !== grant.action ||
        consumed.resource !== grant.resource
      ) {
        throw new WritVerifyError("writ_unavailable", "writ's answer does not match the token.");
      }
      return {
        agent: consumed.sub,
        action: consumed.action,
        resource: consumed.resource,
        requestId: consumed.request_id,
        jti: consumed.jti,
        expiresAt: consumed.exp * 1000,
      };
    },
  };
}
