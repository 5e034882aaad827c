import type { Agent } from "../domain/principal.js";
import type { RequestInput } from "../domain/request.js";
import { hasVisibleText } from "../domain/text.js";
import type { PolicyQuery } from "../ports/policy.js";

/**
 * What the policies are asked about a request: the agent as it is now, the
 * action, the resource, and the request's own terms as `context`. The same
 * question when the request is made and again when its credential is collected.
 */
export function policyQueryOf(agent: Agent, input: RequestInput): PolicyQuery {
  return {
    agent,
    action: input.action,
    resource: input.resource,
    context: {
      credential_type: input.credentialType,
      has_reason: hasVisibleText(input.reason),
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
      ...(input.ticket !== undefined ? { ticket: input.ticket } : {}),
      ...(input.audience !== undefined ? { audience: input.audience } : {}),
      ...(input.onBehalfOf !== undefined ? { on_behalf_of: input.onBehalfOf } : {}),
      data: input.context,
    },
  };
}
