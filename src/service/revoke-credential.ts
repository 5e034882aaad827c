import { revokeCredential } from "../domain/credential.js";
import type { Auditor, Reviewer } from "../domain/principal.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled, transact } from "./record.js";
import { revokeAtSource } from "./revoke-at-source.js";

/**
 * A reviewer or auditor ends an issued credential before it is used; types
 * with a revoker are ended at their source first, and `credential.revoked`
 * records that too.
 */
export async function revoke(deps: BrokerDeps, by: Reviewer | Auditor, id: string, reason: string) {
  const revokedAtSource = await revokeAtSource(deps, await loadSettled(deps, id), "revoked");
  return transact(deps, id, (request, now) =>
    revokeCredential({
      request,
      by,
      reason,
      now,
      ...(revokedAtSource !== undefined ? { revokedAtSource } : {}),
    }),
  );
}
