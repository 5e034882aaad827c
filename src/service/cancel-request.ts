import type { Agent } from "../domain/principal.js";
import { cancelRequest } from "../domain/request.js";
import { assertOwnRequest } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/** The requesting agent withdraws a request it no longer needs. */
export async function cancel(deps: BrokerDeps, agent: Agent, id: string) {
  return transact(deps, id, (request, now) => {
    assertOwnRequest(request, agent);
    return cancelRequest({ request, agent, now });
  });
}
