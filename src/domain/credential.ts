import { timingSafeEqual } from "node:crypto";
import { WritError } from "./errors.js";
import type { DomainEvent } from "./events.js";
import {
  type Agent,
  type Auditor,
  actorOf,
  type ResourceServer,
  type Reviewer,
} from "./principal.js";
import {
  type AccessRequest,
  advance,
  type IssuedCredential,
  type RequestStatus,
  requestEvent,
  type Transition,
} from "./request.js";
import { atSourceData, type RevokedAtSource, sourceRevokedEvent } from "./revocation.js";

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
    case "revoked":
      // Revoked before it was collected: there never was a credential.
      if (request.credential === undefined) {
        throw new WritError("request_revoked", "The request was revoked before it was collected.");
      }
      throw new WritError(
        "credential_already_issued",
        "The credential was already collected; it is handed out once.",
      );
    case "issued":
    case "used":
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
    request: advance(
      request,
      { status: "issued", credential, expiresAt: credential.expiresAt },
      now,
    ),
    events: [
      requestEvent(request, "credential.issued", actorOf(agent), now, {
        ...credential.attributes,
        credential_type: credential.type,
        credential_id: credential.id,
        expires_at: new Date(credential.expiresAt).toISOString(),
        // The TTL minted with, which the policies in force at collect may have lowered.
        ttl_seconds: request.grantedTtlSeconds,
        action: request.action,
        resource: request.resource,
        ...(request.audience ? { audience: request.audience } : {}),
        // The networks the credential may be used from, each list holding; the
        // policies in force at collect may have added to those decided on.
        ...(request.decision.awsSourceIps !== undefined && request.credentialType === "aws"
          ? { aws_source_ips: request.decision.awsSourceIps }
          : {}),
        // Who must look back at it; the policies in force at collect may have added groups.
        ...(request.decision.reviewAfter !== undefined && request.decision.reviewAfter.length > 0
          ? { review_after: [...request.decision.reviewAfter] }
          : {}),
      }),
    ],
  };
}

/**
 * What shows a presented token to be the one issued: its digest, compared with
 * the recorded one; or, for a credential recorded without a digest (issued by
 * an older writ), a verified signature.
 */
export type TokenProof = { readonly digest: string } | { readonly signatureVerified: true };

/** The states a request's credential ends in without being used. */
const ENDED: ReadonlySet<string> = new Set(["revoked", "completed", "expired"]);

/** Digests compared in constant time. */
function sameDigest(recorded: string, presented: string): boolean {
  const a = Buffer.from(recorded, "utf8");
  const b = Buffer.from(presented, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Consuming a token: the first use moves `issued → used`. Any later use is a
 * replay: a transition that keeps the state (same version) and only records
 * `token.replay_blocked`. A genuine token presented after its credential ended
 * (revoked, completed or expired) changes nothing either and is recorded as
 * `token.rejected`: someone still holds it and tried to use it.
 */
export function consumeCredential(args: {
  request: AccessRequest;
  server: ResourceServer;
  credentialId: string;
  proof: TokenProof;
  now: number;
}): Transition {
  const { request, server, credentialId, proof, now } = args;
  const issued = request.credential;
  const genuine =
    issued?.id === credentialId &&
    (issued.digest !== undefined
      ? "digest" in proof && sameDigest(issued.digest, proof.digest)
      : "signatureVerified" in proof);
  if (!genuine) {
    throw new WritError("token_invalid", "The token does not match an issued credential.");
  }
  // Only now are the token's claims known to be writ's: its audience is the request's.
  if (request.audience !== server.audience) {
    throw new WritError("audience_mismatch", "The token was issued for another audience.");
  }
  const actor = actorOf(server);
  const data = { credential_id: credentialId, resource_server: server.id };
  if (request.status === "issued" && now < request.expiresAt) {
    return {
      request: advance(request, { status: "used" }, now),
      events: [requestEvent(request, "token.used", actor, now, data)],
    };
  }
  if (request.status === "used") {
    return { request, events: [requestEvent(request, "token.replay_blocked", actor, now, data)] };
  }
  if (ENDED.has(request.status)) {
    return {
      request,
      events: [
        requestEvent(request, "token.rejected", actor, now, { ...data, status: request.status }),
      ],
    };
  }
  throw new WritError("token_invalid", `The token is no longer valid (${request.status}).`);
}

/**
 * Ends an issued credential before it is used or expires, or an approved
 * request before its credential is collected: the kill switch for reviewers
 * and the security team. A revoked token no longer consumes; a revoked request
 * mints nothing. When the service has ended the credential at its source
 * first, that fact goes into the one `credential.revoked` event.
 */
export function revokeCredential(args: {
  request: AccessRequest;
  by: Reviewer | Auditor;
  reason: string;
  now: number;
  revokedAtSource?: RevokedAtSource;
}): Transition {
  const { request, by, reason, now, revokedAtSource } = args;
  if (request.status !== "issued" && request.status !== "approved") {
    throw new WritError(
      "not_revocable",
      `Only an approved request or an issued, unused credential can be revoked; the request is ${request.status}.`,
      {
        status: request.status,
      },
    );
  }
  return {
    request: advance(request, { status: "revoked" }, now),
    events: [
      requestEvent(request, "credential.revoked", actorOf(by), now, {
        ...(revokedAtSource !== undefined ? atSourceData(revokedAtSource) : {}),
        cause: "revoked",
        // None yet when an approved request is revoked before it was collected.
        credential_id: request.credential?.id ?? null,
        previous_status: request.status,
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
    requestEvent(request, "credential.completed", actor, now, {
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
  return { request: advance(request, { status, completedAt: now }, now), events };
}
