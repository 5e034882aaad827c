import { revokeCredential } from "../domain/credential.js";
import { WritError } from "../domain/errors.js";
import type { Auditor, Reviewer } from "../domain/principal.js";
import type { RequestStatus } from "../domain/request.js";
import { hasVisibleText } from "../domain/text.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled, transact } from "./record.js";
import { revokeAtSource } from "./revoke-at-source.js";

/** Revocations tried again when the request changed status in between. */
const MAX_ATTEMPTS = 5;

/** The request left the status the revocation was prepared for. */
class StatusChanged extends Error {}

/**
 * A reviewer or auditor ends an issued credential before it is used, or an
 * approved request before it is collected. A credential of a type with a
 * revoker is ended at its source first, and `credential.revoked` records that
 * too. Should the agent collect between the read and the commit, the
 * revocation starts again on the issued credential: it never records the end
 * of a credential it did not end at its source.
 */
export async function revoke(deps: BrokerDeps, by: Reviewer | Auditor, id: string, reason: string) {
  // Checked here, before anything is ended at its source, so every channel
  // refuses a blank or invisible reason alike, not only the API's schema.
  if (!hasVisibleText(reason)) {
    throw new WritError("validation_failed", "Give a reason to revoke.");
  }
  for (let attempt = 1; ; attempt++) {
    const current = await loadSettled(deps, id);
    const prepared: RequestStatus = current.status;
    const revokedAtSource = await revokeAtSource(deps, current, "revoked");
    try {
      return await transact(deps, id, (request, now) => {
        if (request.status !== prepared) throw new StatusChanged();
        return revokeCredential({
          request,
          by,
          reason,
          now,
          ...(revokedAtSource !== undefined ? { revokedAtSource } : {}),
        });
      });
    } catch (error) {
      if (!(error instanceof StatusChanged)) throw error;
      if (attempt >= MAX_ATTEMPTS) {
        throw new WritError("conflict", "The request is changing too fast; try again.");
      }
    }
  }
}
