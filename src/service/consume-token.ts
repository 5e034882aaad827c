import { consumeCredential } from "../domain/credential.js";
import { WritError } from "../domain/errors.js";
import type { ResourceServer } from "../domain/principal.js";
import type { TokenClaims } from "../ports/minter.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * A resource server presents a writ JWT. The first consume marks it used; any
 * later one is recorded as a blocked replay and answered `token_replayed`.
 */
export async function consumeToken(
  deps: BrokerDeps,
  server: ResourceServer,
  token: string,
): Promise<TokenClaims> {
  const claims = await deps.verifier.verify(token, deps.clock.now());
  if (claims.aud !== server.audience) {
    throw new WritError("audience_mismatch", "The token was issued for another audience.");
  }
  const { events } = await transact(deps, claims.requestId, (request, now) =>
    consumeCredential({ request, server, credentialId: claims.jti, now }),
  ).catch((error: unknown) => {
    // A validly signed token whose request is gone (e.g. a wiped dev store) is simply invalid.
    if (error instanceof WritError && error.code === "not_found") {
      throw new WritError("token_invalid", "The token does not match an issued credential.");
    }
    throw error;
  });
  if (events.some((e) => e.type === "token.replay_blocked")) {
    throw new WritError("token_replayed", "The token was already used; it is valid once.");
  }
  return claims;
}
