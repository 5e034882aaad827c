import type { Agent, Auditor, Principal, ResourceServer, Reviewer } from "../domain/principal.js";
import type { RequestInput, ReviewChannel } from "../domain/request.js";
import type { EventQuery, RequestQuery } from "../ports/store.js";
import { cancel } from "./cancel-request.js";
import { collectCredential } from "./collect-credential.js";
import { complete } from "./complete-request.js";
import { consumeToken } from "./consume-token.js";
import { createRequest } from "./create-request.js";
import type { BrokerDeps } from "./deps.js";
import { escalateDue } from "./escalate-requests.js";
import { expireDue } from "./expire-requests.js";
import { oneAtATime } from "./one-at-a-time.js";
import {
  type EventWaitOptions,
  getRequest,
  listEvents,
  listRequests,
  type WaitOptions,
} from "./read-requests.js";
import { recordReviewAfter } from "./review-after.js";
import { approve, deny } from "./review-request.js";
import { revoke } from "./revoke-credential.js";

/** The use cases, bound to their ports. What the HTTP layer, CLI and console call. */
export function createBroker(deps: BrokerDeps) {
  // Concurrent collects of one request take turns in this process: only the
  // first mints, the others then find it issued. Without this each would call
  // the credential provider (an STS AssumeRole), and all but the winner's
  // sessions would have to be ended at their source.
  const collects = oneAtATime();
  return {
    deps,
    request: (agent: Agent, input: RequestInput) => createRequest(deps, agent, input),
    get: (principal: Principal, id: string, wait?: WaitOptions) =>
      getRequest(deps, principal, id, wait),
    list: (principal: Principal, query: RequestQuery) => listRequests(deps, principal, query),
    events: (principal: Principal, query: EventQuery, wait?: EventWaitOptions) =>
      listEvents(deps, principal, query, wait),
    approve: (
      reviewer: Reviewer,
      id: string,
      comment: string | undefined,
      channel: ReviewChannel,
    ) => approve(deps, reviewer, id, comment, channel),
    deny: (reviewer: Reviewer, id: string, reason: string, channel: ReviewChannel) =>
      deny(deps, reviewer, id, reason, channel),
    reviewAfter: (
      reviewer: Reviewer,
      id: string,
      verdict: "ok" | "concern",
      note: string | undefined,
      channel: ReviewChannel,
    ) => recordReviewAfter(deps, reviewer, id, verdict, note, channel),
    cancel: (agent: Agent, id: string) => cancel(deps, agent, id),
    complete: (agent: Agent, id: string) => complete(deps, agent, id),
    revoke: (by: Reviewer | Auditor, id: string, reason: string) => revoke(deps, by, id, reason),
    collect: (agent: Agent, id: string) =>
      collects.run(id, () => collectCredential(deps, agent, id)),
    consume: (server: ResourceServer, token: string) => consumeToken(deps, server, token),
    expireDue: (batch?: number) => expireDue(deps, batch),
    escalateDue: (batch?: number) => escalateDue(deps, batch),
  };
}

export type Broker = ReturnType<typeof createBroker>;
