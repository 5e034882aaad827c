import { WritError } from "../domain/errors.js";
import type { AccessRequest } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";

/**
 * Ends an issued credential at its source through the revoker for its type,
 * if there is one. Runs before the state change is committed: when it fails,
 * the request stays `issued` (true: the credential may still work) and the
 * caller retries, rather than writ recording an end that did not happen.
 */
export async function revokeAtSource(
  deps: Pick<BrokerDeps, "revokers" | "logger">,
  request: AccessRequest,
  reason: "completed" | "revoked",
): Promise<void> {
  if (request.status !== "issued" || request.credential === undefined) return;
  const revoker = deps.revokers?.[request.credentialType];
  if (revoker === undefined) return;
  try {
    await revoker.revoke(request, reason);
  } catch (error) {
    deps.logger.error("revoking a credential at its source failed", {
      request_id: request.id,
      credential_type: request.credentialType,
      error: (error as Error).name,
    });
    throw new WritError(
      "revocation_unavailable",
      "The credential could not be ended at its source; it is still issued. Try again.",
    );
  }
}

/**
 * After writ has recorded an issued credential as expired: ends it at its source
 * too, for types whose sessions can outlive the approved lifetime (an STS session
 * lasts at least 15 minutes, a policy's TTL may be shorter). Runs in the
 * background so that the read or sweep that noticed the expiry is not held up;
 * the expiry stands either way, so a failure is logged, never thrown.
 */
export function revokeExpiredAtSource(
  deps: Pick<BrokerDeps, "revokers" | "logger">,
  request: AccessRequest,
): Promise<void> {
  const revoker = deps.revokers?.[request.credentialType];
  if (request.credential === undefined || revoker === undefined) return Promise.resolve();
  return revoker.revoke(request, "expired").catch((error: unknown) => {
    deps.logger.error("ending an expired credential at its source failed", {
      request_id: request.id,
      credential_type: request.credentialType,
      error: (error as Error).name,
    });
  });
}
