import { WritError } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import type { Agent } from "../domain/principal.js";
import { type AccessRequest, openRequest, type RequestInput } from "../domain/request.js";
import { assertMayActFor } from "../domain/review.js";
import type { BrokerDeps } from "./deps.js";
import { policyQueryOf } from "./policy-query.js";
import { assertWithinLimit } from "./rate-limit.js";
import { announce, assertAuditable, persist } from "./record.js";

/**
 * An agent asks for a credential. The policy decides; the request is recorded
 * whatever the decision, and a `deny` then answers `policy_denied`.
 */
export async function createRequest(
  deps: BrokerDeps,
  agent: Agent,
  input: RequestInput,
): Promise<AccessRequest> {
  const minter = deps.minters[input.credentialType];
  if (minter === undefined) {
    throw new WritError(
      "unsupported_credential_type",
      `This writ does not issue "${input.credentialType}" credentials.`,
    );
  }
  if (input.credentialType === "jwt" && input.audience === undefined) {
    throw new WritError("audience_required", "A JWT credential needs an audience.");
  }
  assertActsFor(deps, agent, input);
  await assertWithinRate(deps, agent);
  const decision = deps.policy.decide(policyQueryOf(agent, input));
  const { request, events } = openRequest({
    id: newId("req"),
    agent,
    input,
    decision,
    now: deps.clock.now(),
    timing: deps.timing,
  });
  // After the decision, which can add conditions to what will be minted (and so
  // to an AWS session policy's size), and before anything is recorded: a request
  // that could never be minted is refused now, not after reviewers approved it.
  if (request.status !== "denied") await minter.validate?.(request);
  assertAuditable(deps, events);
  const result = await deps.store.create(request, events);
  if (!result.ok) throw new WritError("conflict", "Request id collision; try again.");
  deps.recent?.remember(request);
  await persist(deps, result.events);
  announce(deps, request, result.events);
  if (request.status === "denied") {
    const named =
      decision.policies.length > 0 ? decision.policies.join(", ") : "no policy permits it";
    throw new WritError("policy_denied", `Denied by policy: ${named}.`, {
      request_id: request.id,
      policies: [...decision.policies],
    });
  }
  return request;
}

/**
 * Refused before the policy is asked, and so before anything is recorded, like
 * any other request writ will not take. An agent naming someone it may not act
 * for may be trying to keep that reviewer out, so the attempt is logged for the
 * security team.
 */
function assertActsFor(deps: BrokerDeps, agent: Agent, input: RequestInput): void {
  try {
    assertMayActFor(agent, input.onBehalfOf);
  } catch (error) {
    deps.logger.warn("request refused: on_behalf_of names a person the agent may not act for", {
      agent: agent.id,
      owner: agent.owner,
      on_behalf_of: input.onBehalfOf,
    });
    throw error;
  }
}

/**
 * Every request, whatever the policy then decides, is recorded and may notify
 * reviewers: the per-agent limit keeps one agent from flooding either.
 */
function assertWithinRate(deps: BrokerDeps, agent: Agent): Promise<void> {
  return assertWithinLimit(deps.rateLimiter, agent.id, "Too many requests from this agent");
}
