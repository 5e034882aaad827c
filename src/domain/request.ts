import type { Decision } from "./decision.js";
import { WritError } from "./errors.js";
import type { DomainEvent } from "./events.js";
import type { JsonObject } from "./json.js";
import {
  type Actor,
  type Agent,
  type Auditor,
  actorOf,
  type ResourceServer,
  type Reviewer,
  SYSTEM_ACTOR,
} from "./principal.js";
import { atSourceData, type RevokedAtSource, sourceRevokedEvent } from "./revocation.js";

/**
 * `pending → approved → issued → (used | expired | revoked | completed)` and
 * `pending → (denied | expired | cancelled)`; an approved request that is never
 * collected expires or can be cancelled. `completed`: the agent reported its
 * action done before the credential was used or expired, which ended it.
 */
export const REQUEST_STATUSES = [
  "pending",
  "approved",
  "issued",
  "used",
  "expired",
  "revoked",
  "completed",
  "denied",
  "cancelled",
] as const;

export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export type CredentialType = "jwt" | "aws";

/** Where a review came from. Recorded, never trusted for identity. */
export type ReviewChannel = "api" | "cli" | "console" | "slack" | "teams";

export interface Review {
  readonly reviewerId: string;
  readonly verdict: "approve" | "deny";
  /** The reviewer's groups that the policy named, when the review was made. */
  readonly groups: readonly string[];
  readonly comment?: string;
  readonly at: number;
  readonly channel: ReviewChannel;
}

/** What writ keeps about a minted credential: identifiers, never the secret. */
export interface IssuedCredential {
  readonly type: CredentialType;
  /** The JWT `jti`, or the AWS access key id. */
  readonly id: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /**
   * Public facts about the credential that auditors and its revoker need (an AWS
   * session's role, session name, grant id and STS expiry). Recorded in
   * `credential.issued`; never a secret.
   */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** What an agent asks for. */
export interface RequestInput {
  readonly action: string;
  readonly resource: string;
  readonly credentialType: CredentialType;
  readonly audience?: string;
  readonly reason?: string;
  readonly ticket?: string;
  readonly onBehalfOf?: string;
  readonly context: JsonObject;
  readonly ttlSeconds?: number;
}

export interface AccessRequest extends RequestInput {
  readonly id: string;
  /** Incremented by every transition; the store compares it to commit atomically. */
  readonly version: number;
  readonly agentId: string;
  readonly owner: string;
  readonly status: RequestStatus;
  readonly decision: Decision;
  /** The credential lifetime granted: the request's ask, capped by the policy. */
  readonly grantedTtlSeconds: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When the current stage ends: approval deadline, collection deadline, or credential expiry. */
  readonly expiresAt: number;
  readonly reviews: readonly Review[];
  readonly credential?: IssuedCredential;
  /** When the agent reported its action done (`POST /v1/requests/{id}/complete`). */
  readonly completedAt?: number;
}

/** A new state and the events that record the change; committed together or not at all. */
export interface Transition {
  readonly request: AccessRequest;
  readonly events: readonly DomainEvent[];
}

export interface Timing {
  /** How long an approved request may wait to be collected. */
  readonly collectWindowSeconds: number;
}

const LIVE_STATUSES: ReadonlySet<RequestStatus> = new Set(["pending", "approved", "issued"]);

export function isLive(status: RequestStatus): boolean {
  return LIVE_STATUSES.has(status);
}

function event(
  request: AccessRequest,
  type: DomainEvent["type"],
  actor: Actor,
  time: number,
  data: JsonObject,
): DomainEvent {
  return { type, requestId: request.id, actor, time, data };
}

function next(request: AccessRequest, changes: Partial<AccessRequest>, now: number): AccessRequest {
  return { ...request, ...changes, version: request.version + 1, updatedAt: now };
}

/** Opens a request with the policy's decision. A `deny` is recorded as a denied request. */
export function openRequest(args: {
  id: string;
  agent: Agent;
  input: RequestInput;
  decision: Decision;
  now: number;
  timing: Timing;
}): Transition {
  const { id, agent, input, decision, now, timing } = args;
  if (decision.effect !== "deny" && decision.reasonRequired && !input.reason?.trim()) {
    throw new WritError("reason_required", "The policy requires a reason for this request.", {
      policies: [...decision.policies],
    });
  }
  const grantedTtlSeconds = Math.min(input.ttlSeconds ?? decision.ttlSeconds, decision.ttlSeconds);
  const status: RequestStatus =
    decision.effect === "allow" ? "approved" : decision.effect === "approve" ? "pending" : "denied";
  const expiresAt =
    status === "approved"
      ? now + timing.collectWindowSeconds * 1000
      : status === "pending"
        ? now + decision.approvalTimeoutSeconds * 1000
        : now;
  const request: AccessRequest = {
    ...input,
    id,
    version: 1,
    agentId: agent.id,
    owner: agent.owner,
    status,
    decision,
    grantedTtlSeconds,
    createdAt: now,
    updatedAt: now,
    expiresAt,
    reviews: [],
  };
  const actor = actorOf(agent);
  const events: DomainEvent[] = [
    event(request, "request.created", actor, now, {
      agent: agent.id,
      owner: agent.owner,
      ...(input.onBehalfOf ? { on_behalf_of: input.onBehalfOf } : {}),
      action: input.action,
      resource: input.resource,
      credential_type: input.credentialType,
      ...(input.audience ? { audience: input.audience } : {}),
      ...(input.reason ? { reason: input.reason } : {}),
      ...(input.ticket ? { ticket: input.ticket } : {}),
      ttl_seconds: grantedTtlSeconds,
    }),
    event(request, "request.decided", SYSTEM_ACTOR, now, {
      effect: decision.effect,
      policies: [...decision.policies],
      requirements: decision.requirements.map((r) => ({ groups: [...r.groups], quorum: r.quorum })),
    }),
  ];
  if (status === "approved") {
    events.push(
      event(request, "request.approved", SYSTEM_ACTOR, now, { by: "policy", approvers: [] }),
    );
  } else if (status === "denied") {
    events.push(event(request, "request.denied", SYSTEM_ACTOR, now, { by: "policy" }));
  }
  return { request, events };
}

/** The requirements still unmet, given the approvals so far. */
export function unmetRequirements(request: AccessRequest) {
  const approvals = request.reviews.filter((r) => r.verdict === "approve");
  return request.decision.requirements.filter((requirement) => {
    const counted = new Set(
      approvals
        .filter((a) => a.groups.some((g) => requirement.groups.includes(g)))
        .map((a) => a.reviewerId),
    );
    return counted.size < requirement.quorum;
  });
}

/** Distinct people who have approved. */
export function approverIds(request: AccessRequest): string[] {
  return [
    ...new Set(request.reviews.filter((r) => r.verdict === "approve").map((r) => r.reviewerId)),
  ];
}

/**
 * The reviewer's groups that the policy names, if `reviewer` may act on `request`
 * now: it is pending and before its deadline, and the reviewer is neither the
 * agent, its owner nor its `on_behalf_of` person. Throws the coded reason otherwise.
 * Every channel's checks (review, reveal) go through here.
 */
/**
 * Whether two person ids name the same person. Case and Unicode compatibility
 * forms are folded: an owner taken from an identity provider's claim
 * ("AliceSmith") must still match the reviewer configured as "alicesmith".
 */
export function samePerson(a: string, b: string): boolean {
  return a.normalize("NFKC").toLowerCase() === b.normalize("NFKC").toLowerCase();
}

export function assertEligibleReviewer(
  request: AccessRequest,
  reviewer: Reviewer,
  now: number,
): string[] {
  if (request.status !== "pending") {
    throw new WritError("request_not_pending", `The request is ${request.status}, not pending.`, {
      status: request.status,
    });
  }
  if (now >= request.expiresAt) {
    // An approval that arrives after the deadline never counts, even before the sweep.
    throw new WritError("request_not_pending", "The request has expired.", { status: "expired" });
  }
  // Rule 2: the agent, its owner and whoever it acts for never review its requests.
  if (
    samePerson(reviewer.id, request.agentId) ||
    samePerson(reviewer.id, request.owner) ||
    (request.onBehalfOf !== undefined && samePerson(reviewer.id, request.onBehalfOf))
  ) {
    throw new WritError(
      "self_approval_forbidden",
      "You own this agent or it acts on your behalf, so you cannot review its request.",
    );
  }
  const named = new Set(request.decision.requirements.flatMap((r) => r.groups));
  const groups = reviewer.groups.filter((g) => named.has(g));
  if (groups.length === 0) {
    throw new WritError("not_an_approver", "You are not in a group that may review this request.", {
      groups: [...named],
    });
  }
  return groups;
}

function assertReviewable(request: AccessRequest, reviewer: Reviewer, now: number): string[] {
  const groups = assertEligibleReviewer(request, reviewer, now);
  if (request.reviews.some((r) => r.reviewerId === reviewer.id)) {
    throw new WritError("already_reviewed", "You have already reviewed this request.");
  }
  return groups;
}

export function approveRequest(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  comment?: string;
  channel: ReviewChannel;
  /** The reviewer's account in the channel (a Slack user id), recorded with the review. */
  channelUserId?: string;
  now: number;
  timing: Timing;
}): Transition {
  const { request, reviewer, comment, channel, channelUserId, now, timing } = args;
  const groups = assertReviewable(request, reviewer, now);
  const review: Review = {
    reviewerId: reviewer.id,
    verdict: "approve",
    groups,
    ...(comment ? { comment } : {}),
    at: now,
    channel,
  };
  const reviewed = next(request, { reviews: [...request.reviews, review] }, now);
  const approved = unmetRequirements(reviewed).length === 0;
  const approvers = approverIds(reviewed);
  const actor = actorOf(reviewer);
  const events: DomainEvent[] = [
    event(request, "approval.granted", actor, now, {
      reviewer: reviewer.id,
      groups,
      channel,
      ...(channelUserId ? { channel_user_id: channelUserId } : {}),
      ...(comment ? { comment } : {}),
      approvals: approvers.length,
    }),
  ];
  if (!approved) return { request: reviewed, events };
  events.push(
    event(request, "request.approved", SYSTEM_ACTOR, now, { by: "reviewers", approvers }),
  );
  return {
    request: {
      ...reviewed,
      status: "approved",
      expiresAt: now + timing.collectWindowSeconds * 1000,
    },
    events,
  };
}

export function denyRequest(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  reason: string;
  channel: ReviewChannel;
  /** The reviewer's account in the channel (a Slack user id), recorded with the review. */
  channelUserId?: string;
  now: number;
}): Transition {
  const { request, reviewer, reason, channel, channelUserId, now } = args;
  const groups = assertReviewable(request, reviewer, now);
  const review: Review = {
    reviewerId: reviewer.id,
    verdict: "deny",
    groups,
    comment: reason,
    at: now,
    channel,
  };
  const actor = actorOf(reviewer);
  return {
    request: next(request, { status: "denied", reviews: [...request.reviews, review] }, now),
    events: [
      event(request, "approval.denied", actor, now, {
        reviewer: reviewer.id,
        groups,
        channel,
        ...(channelUserId ? { channel_user_id: channelUserId } : {}),
        reason,
      }),
      event(request, "request.denied", actor, now, { by: "reviewer", reviewer: reviewer.id }),
    ],
  };
}

export function cancelRequest(args: {
  request: AccessRequest;
  agent: Agent;
  now: number;
}): Transition {
  const { request, agent, now } = args;
  if (request.status !== "pending" && request.status !== "approved") {
    throw new WritError(
      "request_not_pending",
      `The request is ${request.status}; it cannot be cancelled.`,
      {
        status: request.status,
      },
    );
  }
  return {
    request: next(request, { status: "cancelled" }, now),
    events: [
      event(request, "request.cancelled", actorOf(agent), now, { previous_status: request.status }),
    ],
  };
}

/** The transition to `expired` when the current stage's deadline has passed, else undefined. */
export function expireIfDue(request: AccessRequest, now: number): Transition | undefined {
  if (!isLive(request.status) || now < request.expiresAt) return undefined;
  const type = request.status === "issued" ? "credential.expired" : "request.expired";
  return {
    request: next(request, { status: "expired" }, now),
    events: [
      event(request, type, SYSTEM_ACTOR, now, {
        previous_status: request.status,
        deadline: new Date(request.expiresAt).toISOString(),
      }),
    ],
  };
}

/** Throws the error that explains why the request's credential cannot be collected now. */
export function assertCollectable(request: AccessRequest, now: number): void {
  switch (request.status) {
    case "approved":
      if (now >= request.expiresAt)
        throw new WritError("request_expired", "The request has expired.");
      return;
    case "pending":
      throw new WritError("approval_pending", "The request is still waiting for approval.", {
        status: request.status,
      });
    case "denied":
      throw new WritError("request_denied", "The request was denied.");
    case "cancelled":
      throw new WritError("request_cancelled", "The request was cancelled.");
    case "expired":
      throw new WritError("request_expired", "The request has expired.");
    case "issued":
    case "used":
    case "revoked":
    case "completed":
      throw new WritError(
        "credential_already_issued",
        "The credential was already collected; it is handed out once.",
      );
  }
}

export function issueCredential(args: {
  request: AccessRequest;
  agent: Agent;
  credential: IssuedCredential;
  now: number;
}): Transition {
  const { request, agent, credential, now } = args;
  assertCollectable(request, now);
  return {
    request: next(request, { status: "issued", credential, expiresAt: credential.expiresAt }, now),
    events: [
      event(request, "credential.issued", actorOf(agent), now, {
        ...credential.attributes,
        credential_type: credential.type,
        credential_id: credential.id,
        expires_at: new Date(credential.expiresAt).toISOString(),
        action: request.action,
        resource: request.resource,
        ...(request.audience ? { audience: request.audience } : {}),
      }),
    ],
  };
}

/**
 * Consuming a token: the first use moves `issued → used`. Any later use is a
 * replay: a transition that keeps the state (same version) and only records
 * `token.replay_blocked`.
 */
export function consumeCredential(args: {
  request: AccessRequest;
  server: ResourceServer;
  credentialId: string;
  now: number;
}): Transition {
  const { request, server, credentialId, now } = args;
  if (request.credential?.id !== credentialId) {
    throw new WritError("token_invalid", "The token does not match an issued credential.");
  }
  const actor = actorOf(server);
  const data = { credential_id: credentialId, resource_server: server.id };
  if (request.status === "issued" && now < request.expiresAt) {
    return {
      request: next(request, { status: "used" }, now),
      events: [event(request, "token.used", actor, now, data)],
    };
  }
  if (request.status === "used") {
    return { request, events: [event(request, "token.replay_blocked", actor, now, data)] };
  }
  throw new WritError("token_invalid", `The token is no longer valid (${request.status}).`);
}

/**
 * Ends an issued credential before it is used or expires: the kill switch for
 * reviewers and the security team. A revoked token no longer consumes. When the
 * service has ended it at its source first, that fact goes into the one
 * `credential.revoked` event.
 */
export function revokeCredential(args: {
  request: AccessRequest;
  by: Reviewer | Auditor;
  reason: string;
  now: number;
  revokedAtSource?: RevokedAtSource;
}): Transition {
  const { request, by, reason, now, revokedAtSource } = args;
  if (request.status !== "issued") {
    throw new WritError(
      "not_revocable",
      `Only an issued, unused credential can be revoked; the request is ${request.status}.`,
      {
        status: request.status,
      },
    );
  }
  return {
    request: next(request, { status: "revoked" }, now),
    events: [
      event(request, "credential.revoked", actorOf(by), now, {
        ...(revokedAtSource !== undefined ? atSourceData(revokedAtSource) : {}),
        cause: "revoked",
        credential_id: request.credential?.id ?? null,
        reason,
      }),
    ],
  };
}

/**
 * Whether the agent may report `request` complete: its credential was collected
 * and is still issued (completing ends it), or was already used. Throws
 * `not_completable` otherwise; an already-completed request is accepted here and
 * left unchanged by {@link completeRequest}.
 */
export function assertCompletable(request: AccessRequest): void {
  if (request.status === "issued" || request.status === "used" || request.status === "completed") {
    return;
  }
  const hint =
    request.status === "pending" || request.status === "approved"
      ? " Nothing was collected yet: cancel the request instead."
      : "";
  throw new WritError(
    "not_completable",
    `The request is ${request.status}; only a collected credential can be completed.${hint}`,
    { status: request.status },
  );
}

/**
 * The requesting agent reports its action done. Credential-type neutral: an
 * issued credential ends (`issued → completed`; a JWT no longer consumes, and
 * the service revokes sessions at their source first); a used one stays `used`
 * and the report is recorded. Reporting again changes and records nothing.
 * `revokedAtSource`: the service ended the credential at its source first; it is
 * recorded as `credential.revoked` in the same atomic step.
 */
export function completeRequest(args: {
  request: AccessRequest;
  agent: Agent;
  now: number;
  revokedAtSource?: RevokedAtSource;
}): Transition {
  const { request, agent, now, revokedAtSource } = args;
  assertCompletable(request);
  if (request.status === "completed" || request.completedAt !== undefined) {
    return { request, events: [] };
  }
  const status: RequestStatus = request.status === "issued" ? "completed" : request.status;
  const actor = actorOf(agent);
  const events: DomainEvent[] = [
    event(request, "credential.completed", actor, now, {
      credential_type: request.credentialType,
      credential_id: request.credential?.id ?? null,
      previous_status: request.status,
      ended: request.status === "issued",
    }),
  ];
  if (revokedAtSource !== undefined) {
    events.push(
      sourceRevokedEvent({ request, cause: "completed", revoked: revokedAtSource, actor, now }),
    );
  }
  return { request: next(request, { status, completedAt: now }, now), events };
}
