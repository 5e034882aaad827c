import { assertCompletable, completeRequest } from "../domain/credential.js";
import type { Agent } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { assertOwnRequest } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled, transact } from "./record.js";
import { revokeAtSource } from "./revoke-at-source.js";

/**
 * The requesting agent reports its action done. An issued credential ends now
 * (ended at its source first, for types with a revoker, which the same commit
 * records as `credential.revoked`); a used one stays used and the report is
 * recorded. Reporting again is success and records nothing.
 */
export async function complete(deps: BrokerDeps, agent: Agent, id: string): Promise<AccessRequest> {
  const current = await loadSettled(deps, id);
  assertOwnRequest(current, agent);
  assertCompletable(current);
  const revokedAtSource = await revokeAtSource(deps, current, "completed");
  const { request } = await transact(deps, id, (latest, now) =>
    completeRequest({
      request: latest,
      agent,
      now,
      ...(revokedAtSource !== undefined ? { revokedAtSource } : {}),
    }),
  );
  return request;
}
