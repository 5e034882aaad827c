import { consumeCredential, type TokenProof } from "../domain/credential.js";
import { WritError } from "../domain/errors.js";
import type { ResourceServer } from "../domain/principal.js";
import type { TokenClaims } from "../ports/minter.js";
import type { BrokerDeps } from "./deps.js";
import { assertWithinLimit } from "./rate-limit.js";
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
  // `transact` decides again when the state it decided on was not the stored
  // one: the limit is taken once for this consume, and its answer kept.
  let withinRate: Promise<void> | undefined;
  const { events } = await transact(deps, claims.requestId, async (request, now) => {
    // A JWT recorded without a digest was issued by an older writ (a rolling
    // upgrade): its signature is what shows it genuine.
    const recorded = request.credential;
    const legacy =
      recorded?.type === "jwt" && recorded.id === claims.jti && recorded.digest === undefined;
    if (legacy) await deps.tokens.verify(token, now);
    const proof: TokenProof = legacy ? { signatureVerified: true } : { digest };
    const transition = consumeCredential({ request, server, credentialId: claims.jti, proof, now });
    if (transition.events.some((e) => REFUSALS.has(e.type))) {
      withinRate ??= assertWithinRate(deps, server);
      await withinRate;
    }
    return transition;
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

/** The refusals a consume records: a replay of a used token, a token whose credential ended. */
const REFUSALS: ReadonlySet<string> = new Set(["token.replay_blocked", "token.rejected"]);

/**
 * Every consume of a token already used or ended is recorded, in the stream,
 * the log and the request's own events: the per-resource-server limit on such
 * refusals keeps one resource server retrying a used token in a loop (or a
 * thief replaying a stolen one through it) from growing them without bound.
 * It is taken only for a consume that would record a refusal, before anything
 * is recorded: a first use never waits on it, and a consume over the limit
 * changes and records nothing.
 */
function assertWithinRate(deps: BrokerDeps, server: ResourceServer): Promise<void> {
  return assertWithinLimit(
    deps.consumeRateLimiter,
    server.id,
    "Too many refused tokens from this resource server",
  );
}
