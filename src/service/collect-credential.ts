import { assertCollectable, issueCredential } from "../domain/credential.js";
import type { Decision } from "../domain/decision.js";
import { WritError } from "../domain/errors.js";
import type { Agent } from "../domain/principal.js";
import {
  type AccessRequest,
  denyUnderCurrentPolicy,
  type IssuedCredential,
} from "../domain/request.js";
import { assertMayActFor, cappedUnder, type Shortfall, shortfallUnder } from "../domain/review.js";
import type { Credential } from "../ports/minter.js";
import { assertOwnRequest } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { policyQueryOf } from "./policy-query.js";
import { appendEvents, transact } from "./record.js";
import { revokeDiscardedAtSource } from "./revoke-at-source.js";

/**
 * Mints the credential of an approved request, once. The credential is minted
 * first and returned only after `credential.issued` is committed with the
 * `approved → issued` change and persisted to the audit log: if any of that
 * fails or another collect wins the race, the minted secret is dropped unseen,
 * and a credential that lives on at its source (an AWS session) is ended there.
 *
 * The policies in force now are asked again first: a request they now deny (a
 * guardrail added after it was decided) is denied by policy instead, and
 * nothing is minted; a TTL they now cap lower than the one granted is the TTL
 * minted and recorded.
 */
export async function collectCredential(
  deps: BrokerDeps,
  agent: Agent,
  id: string,
): Promise<Credential> {
  let credential: Credential | undefined;
  const minted: { request: AccessRequest; record: IssuedCredential }[] = [];
  let handedOut: string | undefined;
  let deniedNow: { decision: Decision; shortfall: Shortfall } | undefined;
  try {
    const result = await transact(deps, id, async (request, now) => {
      // Every check runs again on each retry, on fresh state: once a concurrent
      // collect has won, `credential_already_issued` is thrown and nothing leaves.
      deniedNow = undefined;
      assertOwnRequest(request, agent);
      assertCollectable(request, now);
      // The agent as configured now: once a security team has limited whom an
      // agent may act for, a request made before that, naming someone else (a
      // strict reviewer it kept out), is never minted.
      assertMayActFor(agent, request.onBehalfOf);
      const current = deps.policy.decide(policyQueryOf(agent, request));
      const shortfall = shortfallUnder(request, current);
      if (shortfall !== undefined) {
        deniedNow = { decision: current, shortfall };
        return denyUnderCurrentPolicy({
          request,
          decision: current,
          ...(shortfall !== "denied" ? { requires: shortfall } : {}),
          now,
        });
      }
      const minter = deps.minters[request.credentialType];
      if (minter === undefined) {
        throw new WritError(
          "unsupported_credential_type",
          `No minter for "${request.credentialType}".`,
        );
      }
      const granted = cappedUnder(request, current);
      const mint = await minter.mint(granted, now);
      minted.push({ request: granted, record: mint.record });
      credential = mint.credential;
      return issueCredential({ request: granted, agent, credential: mint.record, now });
    });
    handedOut = result.request.credential?.id;
  } finally {
    for (const { request, record } of minted) {
      if (record.id === handedOut) continue;
      deps.logger.warn("a minted credential was not handed out", {
        request_id: request.id,
        credential_type: record.type,
        credential_id: record.id,
      });
      void revokeDiscardedAtSource(deps, request, record, (events) =>
        appendEvents(deps, request, events),
      );
    }
  }
  if (deniedNow !== undefined) {
    const { decision, shortfall } = deniedNow;
    const named =
      decision.policies.length > 0 ? decision.policies.join(", ") : "no policy permits it now";
    const message =
      shortfall === "denied"
        ? `Denied by the policies in force now: ${named}.`
        : shortfall === "reason"
          ? `The policies in force now (${named}) require a reason this request did not give; ask again with one.`
          : `The policies in force now (${named}) require approvals this request does not have; ask again.`;
    throw new WritError("policy_denied", message, {
      request_id: id,
      policies: [...decision.policies],
      ...(shortfall !== "denied" ? { requires: shortfall } : {}),
    });
  }
  if (credential === undefined) throw new WritError("internal_error", "No credential was minted.");
  return credential;
}
