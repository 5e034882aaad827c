import { consumeCredential, type TokenProof } from "../domain/credential.js";
import { WritError } from "../domain/errors.js";
import type { ResourceServer } from "../domain/principal.js";
import type { TokenClaims } from "../ports/minter.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * A resource server presents a writ JWT. The first consume marks it used; any
 * later one is recorded as a blocked replay and answered `token_replayed`; one
 * after the credential ended unused is recorded as `token.rejected` and
 * answered `token_invalid`. The
 * token is accepted only if it is, byte for byte, the one writ issued for that
 * request (its digest equals the recorded one): a forged, altered or re-signed
 * token changes nothing and is answered `token_invalid`.
 */
export async function consumeToken(
  deps: BrokerDeps,
  server: ResourceServer,
  token: string,
): Promise<TokenClaims> {
  const { claims, digest } = deps.tokens.read(token);
  const { events } = await transact(deps, claims.requestId, async (request, now) => {
    // A JWT recorded without a digest was issued by an older writ (a rolling
    // upgrade): its signature is what shows it genuine.
    const recorded = request.credential;
    const legacy =
      recorded?.type === "jwt" && recorded.id === claims.jti && recorded.digest === undefined;
    if (legacy) await deps.tokens.verify(token, now);
    const proof: TokenProof = legacy ? { signatureVerified: true } : { digest };
    return consumeCredential({ request, server, credentialId: claims.jti, proof, now });
  }).catch((error: unknown) => {
    // A token whose request is gone (e.g. a wiped dev store) is simply invalid.
    if (error instanceof WritError && error.code === "not_found") {
      throw new WritError("token_invalid", "The token does not match an issued credential.");
    }
    throw error;
  });
  if (events.some((e) => e.type === "token.replay_blocked")) {
    throw new WritError("token_replayed", "The token was already used; it is valid once.");
  }
  const rejected = events.find((e) => e.type === "token.rejected");
  if (rejected !== undefined) {
    throw new WritError(
      "token_invalid",
      `The token is no longer valid (${String(rejected.data.status)}).`,
    );
  }
  return claims;
}
