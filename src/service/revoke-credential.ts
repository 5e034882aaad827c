import type { Auditor, Reviewer } from "../domain/principal.js";
import { revokeCredential } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/** A reviewer or auditor ends an issued credential before it is used. */
export async function revoke(deps: BrokerDeps, by: Reviewer | Auditor, id: string, reason: string) {
  return transact(deps, id, (request, now) => revokeCredential({ request, by, reason, now }));
}
