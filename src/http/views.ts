import { approverGroups, escalationTerms, requiredQuorum } from "../domain/decision.js";
import type { RecordedEvent } from "../domain/events.js";
import type { Principal } from "../domain/principal.js";
import type { AccessRequest, AfterReview } from "../domain/request.js";
import { unmetRequirements } from "../domain/review.js";
import type { Credential } from "../ports/minter.js";

const iso = (ms: number) => new Date(ms).toISOString();

export const MASK = "•••";

/**
 * The API form of a request. Context fields the policy marks sensitive are
 * masked for everyone but the agent that sent them.
 */
export function requestView(request: AccessRequest, viewer: Principal) {
  const { decision } = request;
  const masked =
    viewer.kind === "agent" ? [] : decision.sensitiveFields.filter((f) => f in request.context);
  const context: Record<string, unknown> = { ...request.context };
  for (const field of masked) context[field] = MASK;
  const pending = unmetRequirements(request).reduce((sum, r) => {
    const have = new Set(
      request.reviews
        .filter((v) => v.verdict === "approve" && v.groups.some((g) => r.groups.includes(g)))
        .map((v) => v.reviewerId),
    ).size;
    return sum + (r.quorum - have);
  }, 0);
  return {
    id: request.id,
    status: request.status,
    agent: request.agentId,
    owner: request.owner,
    ...(request.onBehalfOf !== undefined ? { on_behalf_of: request.onBehalfOf } : {}),
    action: request.action,
    resource: request.resource,
    credential_type: request.credentialType,
    ...(request.audience !== undefined ? { audience: request.audience } : {}),
    ...(request.reason !== undefined ? { reason: request.reason } : {}),
    ...(request.ticket !== undefined ? { ticket: request.ticket } : {}),
    context,
    masked_fields: masked,
    ttl_seconds: request.grantedTtlSeconds,
    decision: {
      effect: decision.effect,
      policies: [...decision.policies],
      ...(decision.effect === "approve"
        ? { approvers: approverGroups(decision), quorum: requiredQuorum(decision) }
        : {}),
      requirements: decision.requirements.map((r) => ({ groups: [...r.groups], quorum: r.quorum })),
      ttl_seconds: request.grantedTtlSeconds,
      reason_required: decision.reasonRequired,
      ...escalationTerms(decision),
      ...(decision.notify !== undefined ? { notify: [...decision.notify] } : {}),
    },
    reviews: request.reviews.map((r) => ({
      reviewer: r.reviewerId,
      verdict: r.verdict,
      ...(r.comment !== undefined ? { comment: r.comment } : {}),
      channel: r.channel,
      at: iso(r.at),
    })),
    pending_approvals: request.status === "pending" ? pending : 0,
    ...(request.credential !== undefined
      ? {
          credential: {
            type: request.credential.type,
            id: request.credential.id,
            issued_at: iso(request.credential.issuedAt),
            expires_at: iso(request.credential.expiresAt),
          },
        }
      : {}),
    ...(request.completedAt !== undefined ? { completed_at: iso(request.completedAt) } : {}),
    ...(decision.reviewAfter !== undefined
      ? {
          // The look back is the security team's: an agent is not told what its
          // reviewers concluded, or their notes about it.
          review_after: afterReviewView(
            decision.reviewAfter,
            viewer.kind === "agent" ? undefined : request.reviewedAfter,
          ),
        }
      : {}),
    ...(request.escalatedAt !== undefined ? { escalated_at: iso(request.escalatedAt) } : {}),
    created_at: iso(request.createdAt),
    updated_at: iso(request.updatedAt),
    expires_at: iso(request.expiresAt),
  };
}

function afterReviewView(groups: readonly string[], review: AfterReview | undefined) {
  return {
    groups: [...groups],
    ...(review !== undefined
      ? {
          review: {
            reviewer: review.reviewerId,
            verdict: review.verdict,
            ...(review.note !== undefined ? { note: review.note } : {}),
            channel: review.channel,
            at: iso(review.at),
          },
        }
      : {}),
  };
}

export function credentialView(credential: Credential) {
  if (credential.type === "jwt") {
    return {
      credential: {
        type: "jwt" as const,
        token: credential.token,
        expires_at: iso(credential.expiresAt),
      },
    };
  }
  return {
    credential: {
      type: "aws" as const,
      access_key_id: credential.accessKeyId,
      secret_access_key: credential.secretAccessKey,
      session_token: credential.sessionToken,
      expires_at: iso(credential.expiresAt),
    },
  };
}

export function eventView(event: RecordedEvent) {
  return {
    id: event.id,
    type: event.type,
    request_id: event.requestId,
    actor: { kind: event.actor.kind, id: event.actor.id },
    time: iso(event.time),
    data: event.data as Record<string, unknown>,
  };
}
