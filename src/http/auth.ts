import { createMiddleware } from "hono/factory";
import { WritError } from "../domain/errors.js";
import type { Principal, PrincipalKind } from "../domain/principal.js";
import type { IdentityDirectory } from "../ports/identity.js";
import { requireKind } from "../service/access.js";

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

/**
 * Refuses the call with `wrong_principal_kind` unless the authenticated caller is
 * one of `kinds`, and narrows `principal` for the handler. Give it to a route as
 * its `middleware`: that runs before the route's schema checks, so a key of the
 * wrong kind gets 403 whatever it sent, not a 400 that describes what the route
 * would accept.
 */
export function principalKind<K extends PrincipalKind>(...kinds: K[]) {
  return createMiddleware<{ Variables: { principal: Extract<Principal, { kind: K }> } }>(
    async function principalKind(c, next) {
      requireKind(c.get("principal") as Principal, ...kinds);
      await next();
    },
  );
}
