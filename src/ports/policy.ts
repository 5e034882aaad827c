import type { Decision } from "../domain/decision.js";
import type { JsonObject } from "../domain/json.js";
import type { Agent } from "../domain/principal.js";

export interface PolicyQuery {
  readonly agent: Agent;
  readonly action: string;
  readonly resource: string;
  /** Exposed to policies as `context`; includes reason, ticket and credential type. */
  readonly context: JsonObject;
}

/** Decides requests. Any evaluation error denies (fail closed). */
export interface PolicyEngine {
  decide(query: PolicyQuery): Decision;
}
