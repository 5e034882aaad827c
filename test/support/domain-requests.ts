import type { Decision } from "../../src/domain/decision.js";
import type { Agent } from "../../src/domain/principal.js";
import { openRequest, type RequestInput, type Transition } from "../../src/domain/request.js";

/** The moment domain tests open their requests at. */
export const T0 = Date.parse("2026-01-15T09:00:00.000Z");
export const TIMING = { collectWindowSeconds: 300 };
export const REPORT_AGENT: Agent = {
  kind: "agent",
  id: "report-agent",
  owner: "alice",
  attributes: {},
};

/** `req_1`: report-agent's customer export under `decision`, opened at T0. */
export function openExport(decision: Decision, input: Partial<RequestInput> = {}): Transition {
  return openRequest({
    id: "req_1",
    agent: REPORT_AGENT,
    input: {
      action: "db:export",
      resource: "db://prod/customers",
      credentialType: "jwt",
      context: {},
      ...input,
    },
    decision,
    now: T0,
    timing: TIMING,
  });
}
