import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { OidcIssuerSettings } from "../config/oidc-schema.js";
import { type ErrorCode, WritError } from "../domain/errors.js";
import { AGENT_ID, type Agent, PERSON_ID, type Principal } from "../domain/principal.js";
import type { Clock } from "../ports/clock.js";
import type { IdentityDirectory } from "../ports/identity.js";

/** Longest token accepted: platform tokens are 1–2 KB; this bounds parsing work. */
export const MAX_OIDC_TOKEN_LENGTH = 8192;
/** Largest discovery document read. */
const MAX_DISCOVERY_BYTES = 64 * 1024;
/** Largest key set read: issuers publish a few keys, a few KB. */
const MAX_JWKS_BYTES = 256 * 1024;
const FETCH_TIMEOUT_MS = 5000;
/** After a failed discovery or key set read, wait this long before asking the issuer again. */
const RETRY_AFTER_FAILURE_MS = 30_000;
/** How long a discovery document is trusted before it is read again. */
export const DISCOVERY_REFRESH_MS = 3_600_000;

// The signature may be empty, so that an unsigned (`alg: none`) token is refused as such.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

type KeyResolver = ReturnType<typeof createRemoteJWKSet>;

export interface OidcAuthenticatorOptions {
  issuers: readonly OidcIssuerSettings[];
  clock: Clock;
  /** For discovery documents; defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** Turns verified workload-identity tokens into agents. */
export interface OidcAuthenticator {
  /**
   * The agent a token maps to. Throws a `WritError` whose code says why a
   * token is refused (`oidc_issuer_untrusted`, `oidc_token_expired`, …).
   */
  authenticate(token: string): Promise<Agent>;
}

function refuse(code: ErrorCode, message: string): WritError {
  return new WritError(code, message);
}

/** Whether a bearer looks like a JWT rather than a writ key. */
export function looksLikeJwt(bearer: string): boolean {
  return JWT_SHAPE.test(bearer);
}

function secure(url: URL): boolean {
  return (
    url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
  );
}

/** A claim by path (`/` for nesting), reading own properties only. */
function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const segment of path.split("/")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** Strings as they are, numbers and booleans as their text; anything else is no value. */
function claimText(payload: JWTPayload, path: string): string | undefined {
  const value = claimAt(payload, path);
  if (typeof value === "string") return value.length > 0 && value.length <= 256 ? value : undefined;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return String(value);
  return undefined;
}

function render(template: string, payload: JWTPayload): string {
  return template.replace(/\{([^}]*)\}/g, (_whole, path: string) => {
    const value = claimText(payload, path);
    if (value === undefined) {
      throw refuse("oidc_claims_unmapped", `The token has no usable "${path}" claim.`);
    }
    return value;
  });
}

/** What the configured rules make of a verified token. */
function mapAgent(entry: OidcIssuerSettings, payload: JWTPayload): Agent {
  for (const [path, accepted] of Object.entries(entry.require)) {
    const value = claimText(payload, path);
    const allowed = typeof accepted === "string" ? [accepted] : accepted;
    if (value === undefined || !allowed.includes(value)) {
      throw refuse(
        "oidc_claims_unmapped",
        `The token's "${path}" claim is missing or not one this writ accepts.`,
      );
    }
  }
  const id = render(entry.agent.id, payload);
  if (!AGENT_ID.test(id)) {
    throw refuse("oidc_claims_unmapped", "The token's claims do not make a valid agent id.");
  }
  const owner = render(entry.agent.owner, payload);
  if (!PERSON_ID.test(owner)) {
    throw refuse("oidc_claims_unmapped", "The token's claims do not make a valid owner id.");
  }
  // Rendered like the owner: a missing claim refuses the token rather than
  // leaving the agent free to act for anyone.
  const actsFor = entry.agent.acts_for?.map((template) => {
    const person = render(template, payload);
    if (!PERSON_ID.test(person)) {
      throw refuse("oidc_claims_unmapped", "The token's claims do not make a valid acts_for id.");
    }
    return person;
  });
  const attributes: [string, string][] = [];
  for (const [name, path] of Object.entries(entry.agent.attributes)) {
    const value = claimText(payload, path);
    if (value === undefined) {
      throw refuse("oidc_claims_unmapped", `The token has no usable "${path}" claim.`);
    }
    attributes.push([name, value]);
  }
  attributes.push(["oidc_issuer", entry.issuer]);
  // fromEntries, not assignment: an attribute called "__proto__" stays plain data.
  return Object.freeze({
    kind: "agent" as const,
    id,
    owner,
    attributes: Object.freeze(Object.fromEntries(attributes)),
    ...(actsFor !== undefined ? { actsFor: Object.freeze(actsFor) } : {}),
  });
}

/**
 * The body as text, refused as soon as more than `limit` bytes have arrived:
 * a body sent without a length (chunked) is counted as it streams, never
 * buffered whole first.
 */
async function readLimited(response: Response, limit: number): Promise<string> {
  const length = Number(response.headers.get("content-length") ?? "0");
  if (length > limit) throw new Error("response too large");
  const body = response.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw new Error("response too large");
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The issuer's key set: from `jwks_uri` when configured, else from its OpenID
 * discovery document, whose `issuer` must be the configured one (OpenID
 * Connect Discovery §4.3). Keys are fetched once and cached by jose, refetched
 * (at most every 30 s) when a token names a `kid` the cache lacks. A read that
 * fails is not tried again for 30 s.
 */
function issuerKeys(entry: OidcIssuerSettings, fetchImpl: typeof fetch, clock: Clock) {
  const remote = (url: URL) => {
    // jose waits 30 s between reads only after a read that succeeded. Without
    // this, while the key set cannot be read, every token naming the issuer
    // (anyone can send one, unauthenticated) would make writ ask it again, and
    // wait for it again.
    let failedAt: number | undefined;
    const readKeySet = async (input: string, init: RequestInit): Promise<Response> => {
      if (failedAt !== undefined && clock.now() - failedAt < RETRY_AFTER_FAILURE_MS) {
        throw new Error("key set read failed recently");
      }
      try {
        const response = await fetchImpl(input, init);
        if (response.status !== 200) throw new Error(`key set answered HTTP ${response.status}`);
        const text = await readLimited(response, MAX_JWKS_BYTES);
        const set: unknown = JSON.parse(text);
        if (
          typeof set !== "object" ||
          set === null ||
          !Array.isArray((set as { keys?: unknown }).keys)
        ) {
          throw new Error("key set is not a JWKS");
        }
        failedAt = undefined;
        return new Response(text, { status: 200, headers: { "content-type": "application/json" } });
      } catch (error) {
        failedAt = clock.now();
        throw error;
      }
    };
    return createRemoteJWKSet(url, {
      timeoutDuration: FETCH_TIMEOUT_MS,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: readKeySet,
    });
  };
  if (entry.jwks_uri !== undefined) {
    const keys = remote(new URL(entry.jwks_uri));
    return async () => keys;
  }
  /** The last good discovery: its key set, where it points, and when it was read. */
  let resolved: { readonly keys: KeyResolver; readonly uri: string; at: number } | undefined;
  let failedAt: number | undefined;
  let pending: Promise<{ keys: KeyResolver; uri: string }> | undefined;
  const discover = async (): Promise<{ keys: KeyResolver; uri: string }> => {
    const base = entry.issuer.endsWith("/") ? entry.issuer : `${entry.issuer}/`;
    const response = await fetchImpl(new URL(".well-known/openid-configuration", base), {
      headers: { accept: "application/json" },
      redirect: "error",
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (response.status !== 200) throw new Error(`discovery answered HTTP ${response.status}`);
    const document = JSON.parse(await readLimited(response, MAX_DISCOVERY_BYTES)) as Record<
      string,
      unknown
    >;
    if (document.issuer !== entry.issuer) throw new Error("discovery names another issuer");
    if (typeof document.jwks_uri !== "string") throw new Error("discovery has no jwks_uri");
    const jwksUri = new URL(document.jwks_uri);
    if (!secure(jwksUri)) throw new Error("discovery jwks_uri is not https");
    return { keys: remote(jwksUri), uri: jwksUri.href };
  };
  // Read again once an hour, so that an issuer that moves its keys (a new
  // jwks_uri) is followed without a restart. Until a new read succeeds, the
  // last good one stays in use; a key set is replaced only when it moved, so
  // its cache survives.
  return async (): Promise<KeyResolver> => {
    const now = clock.now();
    if (resolved !== undefined && now - resolved.at < DISCOVERY_REFRESH_MS) return resolved.keys;
    if (failedAt !== undefined && now - failedAt < RETRY_AFTER_FAILURE_MS) {
      if (resolved !== undefined) return resolved.keys;
      throw new Error("discovery failed recently");
    }
    pending ??= discover();
    try {
      const found = await pending;
      if (resolved === undefined || resolved.uri !== found.uri) {
        resolved = { ...found, at: clock.now() };
      } else {
        resolved.at = clock.now();
      }
      failedAt = undefined;
      return resolved.keys;
    } catch (error) {
      failedAt = clock.now();
      if (resolved !== undefined) return resolved.keys;
      throw error;
    } finally {
      pending = undefined;
    }
  };
}

/** Marks failures to obtain keys, as opposed to a token the keys reject. */
class KeysUnavailable extends Error {}

function unavailable(issuer: string): WritError {
  return refuse(
    "oidc_issuer_unavailable",
    `The keys of ${issuer} could not be fetched; try again later.`,
  );
}

function explain(error: unknown, issuer: string): WritError {
  if (error instanceof WritError) return error;
  if (error instanceof KeysUnavailable) return unavailable(issuer);
  if (error instanceof joseErrors.JWTExpired) {
    return refuse("oidc_token_expired", "The token has expired.");
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === "nbf" || error.claim === "iat") {
      return refuse("oidc_token_expired", "The token is not valid yet.");
    }
    if (error.claim === "aud") {
      return refuse("oidc_audience_mismatch", "The token was issued for another audience.");
    }
    return refuse("oidc_token_invalid", `The token's "${error.claim}" claim is not acceptable.`);
  }
  return refuse("oidc_token_invalid", "The token's signature or format is not valid.");
}

/**
 * Verifies workload-identity tokens (GitHub Actions, Kubernetes, any issuer
 * with a JWKS) with jose: the issuer picked from the configured list by its
 * exact `iss`, algorithms pinned per issuer, `aud`, `exp`, `nbf` and `iat`
 * checked on the injected clock with bounded tolerance. Then the configured
 * rules map the claims to an agent id, owner and attributes, or refuse the token.
 */
export function createOidcAuthenticator(options: OidcAuthenticatorOptions): OidcAuthenticator {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const byIssuer = new Map(
    options.issuers.map((entry) => [
      entry.issuer,
      { entry, keys: issuerKeys(entry, fetchImpl, options.clock) },
    ]),
  );
  return {
    async authenticate(token) {
      if (token.length > MAX_OIDC_TOKEN_LENGTH || !JWT_SHAPE.test(token)) {
        throw refuse("oidc_token_invalid", "The bearer token is not a well-formed JWT.");
      }
      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch {
        throw refuse("oidc_token_invalid", "The bearer token is not a well-formed JWT.");
      }
      // Nothing of an unverified token is trusted but its `iss`, and only to pick
      // which configured issuer's keys and rules apply.
      const issuer = typeof iss === "string" ? byIssuer.get(iss) : undefined;
      if (issuer === undefined) {
        throw refuse("oidc_issuer_untrusted", "The token's issuer is not trusted by this writ.");
      }
      const { entry, keys } = issuer;
      const now = options.clock.now();
      let payload: JWTPayload;
      try {
        const result = await jwtVerify(
          token,
          async (header, input) => {
            let resolve: KeyResolver;
            try {
              resolve = await keys();
            } catch {
              throw new KeysUnavailable();
            }
            try {
              return await resolve(header, input);
            } catch (error) {
              if (
                error instanceof joseErrors.JWKSNoMatchingKey ||
                error instanceof joseErrors.JWKSMultipleMatchingKeys ||
                error instanceof joseErrors.JOSENotSupported
              ) {
                throw error;
              }
              // A timeout, an unreachable issuer, a non-200 or unreadable key set.
              throw new KeysUnavailable();
            }
          },
          {
            issuer: entry.issuer,
            audience: entry.audience,
            algorithms: [...entry.algorithms],
            clockTolerance: entry.clock_tolerance_seconds,
            currentDate: new Date(now),
            requiredClaims: ["exp"],
          },
        );
        payload = result.payload;
      } catch (error) {
        throw explain(error, entry.issuer);
      }
      // jose checks `iat` only when given a maximum token age. A token issued in
      // the future would stay valid longer than its issuer meant it to.
      const tolerated = Math.floor(now / 1000) + entry.clock_tolerance_seconds;
      if (typeof payload.iat === "number" && payload.iat > tolerated) {
        throw refuse("oidc_token_expired", "The token is not valid yet.");
      }
      return mapAgent(entry, payload);
    },
  };
}

/**
 * One directory for every kind of bearer: writ keys (`writ_…`) go to the key
 * directory; JWTs go to the OIDC authenticator, which says why it refuses one.
 */
export function withOidcAgents(
  keys: IdentityDirectory,
  oidc: OidcAuthenticator | undefined,
): IdentityDirectory {
  if (oidc === undefined) return keys;
  return {
    async authenticate(bearer): Promise<Principal | undefined> {
      if (!bearer.startsWith("writ_") && looksLikeJwt(bearer)) return oidc.authenticate(bearer);
      return keys.authenticate(bearer);
    },
    agent: (id) => keys.agent(id),
    reviewer: (id) => keys.reviewer(id),
    auditor: (id) => keys.auditor(id),
    // Workload tokens are not keys: only configured keys have tags.
    keyTag: (kind, id) => keys.keyTag(kind, id),
  };
}
