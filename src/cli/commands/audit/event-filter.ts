import type { WritEvent } from "../../../sdk/client.js";

/** Request ids whose agent is known; cleared when full, it is only a cache. */
const MAX_AGENT_CACHE = 10_000;

/** What `writ audit tail` keeps: `--type`, `--request`, `--agent`. */
export interface EventFilterOptions {
  readonly type?: string | undefined;
  readonly requestId?: string | undefined;
  readonly agent?: string | undefined;
}

/**
 * The tail's filters, whichever way it reads the stream. An event belongs to an
 * agent when the agent is its actor or its request is the agent's: learnt from
 * the request's `request.created`, else asked once through `agentOf`.
 */
export function createEventFilter(
  options: EventFilterOptions,
  agentOf: (requestId: string) => Promise<string | undefined>,
): (event: WritEvent) => Promise<boolean> {
  const agents = new Map<string, string>();
  function remember(requestId: string, agent: string) {
    if (agents.size >= MAX_AGENT_CACHE) agents.clear();
    agents.set(requestId, agent);
  }
  return async function matches(event) {
    if (event.type === "request.created" && typeof event.data.agent === "string") {
      remember(event.request_id, event.data.agent);
    }
    if (options.type !== undefined && event.type !== options.type) return false;
    if (options.requestId !== undefined && event.request_id !== options.requestId) return false;
    if (options.agent === undefined) return true;
    if (event.actor.kind === "agent" && event.actor.id === options.agent) return true;
    if (event.request_id === "") return false;
    let agent = agents.get(event.request_id);
    if (agent === undefined) {
      // "" stands for a request the store no longer holds: nobody's.
      agent = (await agentOf(event.request_id)) ?? "";
      remember(event.request_id, agent);
    }
    return agent === options.agent;
  };
}
