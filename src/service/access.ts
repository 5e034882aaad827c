import { WritError } from "../domain/errors.js";
import type { Agent, Principal, PrincipalKind } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";

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
 * Whether `principal` may read `request`. An agent sees only its own requests;
 * to anyone else another agent's request does not exist (404, not 403), so ids
 * cannot be probed.
 */
export function assertVisible(request: AccessRequest, principal: Principal): void {
  if (principal.kind === "agent" && request.agentId !== principal.id) {
    throw new WritError("not_found", "No such request.");
  }
  if (principal.kind === "resource_server") {
    throw new WritError("wrong_principal_kind", "Resource servers cannot read requests.");
  }
}

export function assertOwnRequest(request: AccessRequest, agent: Agent): void {
  if (request.agentId !== agent.id) throw new WritError("not_found", "No such request.");
}
