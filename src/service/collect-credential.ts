import { assertCollectable, issueCredential } from "../domain/credential.js";
import { WritError } from "../domain/errors.js";
import type { Agent } from "../domain/principal.js";
import type { Credential } from "../ports/minter.js";
import { assertOwnRequest } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * Mints the credential of an approved request, once. The credential is minted
 * first and returned only after `credential.issued` is committed with the
 * `approved → issued` change and persisted to the audit log: if any of that
 * fails or another collect wins the race, the minted secret is dropped unseen.
 */
export async function collectCredential(
  deps: BrokerDeps,
  agent: Agent,
  id: string,
): Promise<Credential> {
  let credential: Credential | undefined;
  await transact(deps, id, async (request, now) => {
    // Every check runs again on each retry, on fresh state: once a concurrent
    // collect has won, `credential_already_issued` is thrown and nothing leaves.
    assertOwnRequest(request, agent);
    assertCollectable(request, now);
    const minter = deps.minters[request.credentialType];
    if (minter === undefined) {
      throw new WritError(
        "unsupported_credential_type",
        `No minter for "${request.credentialType}".`,
      );
    }
    const minted = await minter.mint(request, now);
    credential = minted.credential;
    return issueCredential({ request, agent, credential: minted.record, now });
  });
  if (credential === undefined) throw new WritError("internal_error", "No credential was minted.");
  return credential;
}
