import type { Context, MiddlewareHandler } from "hono";
import {
  createWritVerifier,
  type WritGrant,
  type WritVerifier,
  type WritVerifierOptions,
  WritVerifyError,
} from "./verify.js";

export type { WritGrant, WritVerifierOptions } from "./verify.js";
export { createWritVerifier, WritVerifyError } from "./verify.js";

/** What `writAuth` sets on the context: `c.get("writ")`. */
export type WritAuthEnv = { Variables: { writ: WritGrant } };

export type WritAuthOptions = (
  | WritVerifierOptions
  /** A verifier shared by several routes (one JWKS cache). */
  | { verifier: WritVerifier }
) & {
  /** The action this route performs, e.g. `db:export`. */
  action: string;
  /** The resource it acts on: fixed, or derived from the request (e.g. a path parameter). */
  resource: string | ((c: Context) => string | Promise<string>);
};

// The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([\x21-\x7e]+)$/;

/**
 * Hono middleware: the request must carry a writ token for exactly this
 * route's action and resource; it is consumed once, and the grant is set as
 * `c.get("writ")`. A refused token is answered with writ's error shape and
 * `WWW-Authenticate` (RFC 6750): 401 (missing, invalid, expired, replayed),
 * 403 (another action or resource) or 503 (writ unreachable).
 */
export function writAuth(options: WritAuthOptions): MiddlewareHandler<WritAuthEnv> {
  const { action, resource } = options;
  if (typeof action !== "string" || action === "") throw new TypeError("action is required");
  if (typeof resource !== "string" && typeof resource !== "function") {
    throw new TypeError("resource must be a string or a function of the request");
  }
  const verifier = "verifier" in options ? options.verifier : createWritVerifier(options);
  return async function writAuth(c, next) {
    const header = c.req.header("authorization");
    const token = header === undefined ? undefined : (BEARER.exec(header)?.[1] ?? "\u0000");
    try {
      const required = {
        action,
        resource: typeof resource === "string" ? resource : await resource(c),
      };
      c.set("writ", await verifier.verify(token, required));
    } catch (error) {
      if (!(error instanceof WritVerifyError)) throw error;
      if (error.status !== 503) {
        const kind = error.status === 403 ? "insufficient_scope" : "invalid_token";
        c.header(
          "WWW-Authenticate",
          error.code === "token_missing"
            ? 'Bearer realm="writ"'
            : `Bearer realm="writ", error="${kind}"`,
        );
      }
      c.header("Cache-Control", "no-store");
      return c.json(error.toJSON(), error.status);
    }
    await next();
  };
}
