import { createMiddleware } from "hono/factory";
import { WritError } from "../domain/errors.js";
import type { Principal } from "../domain/principal.js";
import type { IdentityDirectory } from "../ports/identity.js";

export type AuthEnv = { Variables: { principal: Principal } };

export interface PrincipalAuthOptions {
  identities: IdentityDirectory;
}

// Long enough for workload-identity JWTs (1–2 KB in practice), not for abuse.
// The scheme is case-insensitive (RFC 9110 §11.1); the key is not.
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([\x21-\x7e]{1,8192})$/;

/** Authenticates `Authorization: Bearer <key>` and sets `principal`; anything else is 401. */
export function principalAuth(options: PrincipalAuthOptions) {
  return createMiddleware<AuthEnv>(async function principalAuth(c, next) {
    const header = c.req.header("authorization");
    if (header === undefined) {
      throw new WritError("unauthenticated", "Send your key as Authorization: Bearer <key>.");
    }
    const key = BEARER.exec(header)?.[1];
    const principal = key === undefined ? undefined : await options.identities.authenticate(key);
    if (principal === undefined) throw new WritError("unauthenticated", "The key is not valid.");
    c.set("principal", principal);
    await next();
  });
}
