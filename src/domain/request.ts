import { type Decision, escalationTerms } from "./decision.js";
import { WritError } from "./errors.js";
import type { DomainEvent } from "./events.js";
import type { JsonObject } from "./json.js";
import { type Actor, type Agent, actorOf, SYSTEM_ACTOR } from "./principal.js";
import { hasVisibleText } from "./text.js";

/**
 * The longest a credential may live, in seconds: 12 hours, the longest STS
 * session. Agents may ask for no more, policies and the default may grant no
 * more, and signing keys are kept at least this long after they retire, so no
 * token outlives the key that verifies it.
 */
export const MAX_TTL_SECONDS = 43_200;

/**
 * The longest a request may wait for approval, in seconds: 7 days. Neither the
 * default nor a policy's `@approval_timeout` may be longer, so a deadline is
 * always a date that can be written down.
 */
export const MAX_APPROVAL_TIMEOUT_SECONDS = 604_800;

/**
 * `pending → approved → issued → (used | expired | revoked | completed)` and
 * `pending → (denied | expired | cancelled)`; an approved request that is never
 * collected expires, or can be cancelled, revoked, or denied by the policies in
 * force when it is collected. `completed`: the agent reported its
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

/**
 * What a request's `expiresAt` is at each status, where it still bounds
 * something: the approval deadline, the collection deadline, the credential's
 * expiry. A request in any other status has ended; its `expiresAt` is history.
 */
export const STAGE_DEADLINES: Partial<Record<RequestStatus, string>> = {
  pending: "Approve by",
  approved: "Collect by",
  issued: "Credential expires",
};

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

/**
 * A look back at a request whose credential was issued, by a member of its
 * `@review_after` groups: `ok`, or a `concern` with a note saying what is wrong.
 * A concern changes no credential; revoking stays its own action.
 */
export interface AfterReview {
  readonly reviewerId: string;
  readonly verdict: "ok" | "concern";
  /** The reviewer's groups that the policy named, when the review was made. */
  readonly groups: readonly string[];
  readonly note?: string;
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
   * SHA-256 of the issued token, base64url (JWTs): consume accepts only a token
   * with this digest. Not a secret, yet kept out of events and API views, which
   * have no use for it.
   */
  readonly digest?: string;
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
  /**
   * When the request was escalated (`request.escalated`): still pending at the
   * time its decision's escalation named. Set once, never cleared.
   */
  readonly escalatedAt?: number;
  /** The review after the fact (`request.reviewed_after`), once recorded. Set once, never cleared. */
  readonly reviewedAfter?: AfterReview;
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

/** An event about `request`; shared by the transitions in this folder. */
export function requestEvent(
  request: AccessRequest,
  type: DomainEvent["type"],
  actor: Actor,
  time: number,
  data: JsonObject,
): DomainEvent {
  return { type, requestId: request.id, actor, time, data };
}

/** The request after a transition: its changes, the next version, the time. */
export function advance(
  request: AccessRequest,
  changes: Partial<AccessRequest>,
  now: number,
): AccessRequest {
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
  if (decision.effect !== "deny" && decision.reasonRequired && !hasVisibleText(input.reason)) {
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
    requestEvent(request, "request.created", actor, now, {
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
    requestEvent(request, "request.decided", SYSTEM_ACTOR, now, {
      effect: decision.effect,
      policies: [...decision.policies],
      requirements: decision.requirements.map((r) => ({ groups: [...r.groups], quorum: r.quorum })),
      // The escalation's terms are part of what was decided: recorded here, the
      // audit trail shows them even for a request answered before it fires.
      ...escalationTerms(decision),
      ...(decision.notify !== undefined ? { notify: [...decision.notify] } : {}),
      ...(decision.reviewAfter !== undefined ? { review_after: [...decision.reviewAfter] } : {}),
    }),
  ];
  if (status === "approved") {
    events.push(
      requestEvent(request, "request.approved", SYSTEM_ACTOR, now, { by: "policy", approvers: [] }),
    );
  } else if (status === "denied") {
    events.push(
      requestEvent(request, "request.denied", SYSTEM_ACTOR, now, {
        by: "policy",
        policies: [...decision.policies],
      }),
    );
  }
  return { request, events };
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
    request: advance(request, { status: "cancelled" }, now),
    events: [
      requestEvent(request, "request.cancelled", actorOf(agent), now, {
        previous_status: request.status,
      }),
    ],
  };
}

/**
 * A request not yet collected that the policies in force now deny (a guardrail
 * added since it was decided), or whose terms they now ask more of (approvals
 * it lacks, a reason it did not give: `requires`): denied by policy, naming the
 * policies in force now. A policy change thereby reaches every request that has
 * no credential yet, not only those asked for after it.
 */
export function denyUnderCurrentPolicy(args: {
  request: AccessRequest;
  decision: Decision;
  requires?: "approval" | "reason";
  now: number;
}): Transition {
  const { request, decision, requires, now } = args;
  if (request.status !== "pending" && request.status !== "approved") {
    throw new WritError("request_not_pending", `The request is ${request.status}.`, {
      status: request.status,
    });
  }
  return {
    request: advance(request, { status: "denied" }, now),
    events: [
      requestEvent(request, "request.denied", SYSTEM_ACTOR, now, {
        by: "policy",
        policies: [...decision.policies],
        previous_status: request.status,
        ...(requires !== undefined ? { requires } : {}),
      }),
    ],
  };
}

/** The transition to `expired` when the current stage's deadline has passed, else undefined. */
export function expireIfDue(request: AccessRequest, now: number): Transition | undefined {
  if (!isLive(request.status) || now < request.expiresAt) return undefined;
  const type = request.status === "issued" ? "credential.expired" : "request.expired";
  return {
    request: advance(request, { status: "expired" }, now),
    events: [
      requestEvent(request, type, SYSTEM_ACTOR, now, {
        previous_status: request.status,
        deadline: new Date(request.expiresAt).toISOString(),
      }),
    ],
  };
}
