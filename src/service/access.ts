import { WritError } from "../domain/errors.js";
import type { Agent, Principal, PrincipalKind } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { samePerson } from "../domain/review.js";

/** Throws `wrong_principal_kind` unless the caller is one of `kinds`. */
export function requireKind<K extends PrincipalKind>(
  principal: Principal,
  ...kinds: K[]
): asserts principal is Extract<Principal, { kind: K }> {
  if (!(kinds as PrincipalKind[]).includes(principal.kind)) {
    throw new WritError("wrong_principal_kind", `This call is for ${kinds.join(" or ")} keys.`);
  }
}

/**
 * Whether `agent` made `request`: the same agent id, under the same owner. A
 * workload identity maps every run of one workflow to one agent id, with the
 * owner taken from whoever started the run: were the id alone enough, a run
 * alice starts could collect the request of a run bob started, which alice
 * approved, and she would hold a credential she approved herself.
 */
function madeBy(request: AccessRequest, agent: Agent): boolean {
  return request.agentId === agent.id && samePerson(request.owner, agent.owner);
}

/**
 * Whether `principal` may read `request`. An agent sees only its own requests
 * (see `madeBy`); to anyone else another agent's request does not exist (404,
 * not 403), so ids cannot be probed.
 */
export function assertVisible(request: AccessRequest, principal: Principal): void {
  if (principal.kind === "agent" && !madeBy(request, principal)) {
    throw new WritError("not_found", "No such request.");
  }
  if (principal.kind === "resource_server") {
    throw new WritError("wrong_principal_kind", "Resource servers cannot read requests.");
  }
}

export function assertOwnRequest(request: AccessRequest, agent: Agent): void {
  if (!madeBy(request, agent)) throw new WritError("not_found", "No such request.");
}
