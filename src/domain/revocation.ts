import type { DomainEvent } from "./events.js";
import type { JsonObject } from "./json.js";
import { type Actor, SYSTEM_ACTOR } from "./principal.js";
import type { AccessRequest } from "./request.js";

/**
 * What ended a credential: the agent's completion, a reviewer's revoke, its
 * expiry, or its discard: minted but never handed out (another collect won the
 * race, or its record could not be committed or logged).
 */
export type RevocationCause = "completed" | "revoked" | "expired" | "discarded";

/**
 * The fact that a revoker ended a credential at its source (an AWS session
 * denied through its role's IAM policy). Recorded in `credential.revoked`;
 * public facts only, never a secret.
 */
export interface RevokedAtSource {
  /** The revoker that ended it, recorded as `at_source` (`aws-iam`). */
  readonly source: string;
  /** How: for AWS the role, policy name, grant id and the form of deny written. */
  readonly details?: Readonly<Record<string, string>>;
}

/** Why a revoker could not end an expired credential at its source. */
export interface SourceRevocationFailure {
  readonly source: string;
  /** Calls made to the revoker. */
  readonly attempts: number;
  /** The last failure's error code (`aws_unavailable`), never its message. */
  readonly error: string;
  /** `attempts_exhausted`, or `shutdown`: writ stopped before the retries ran out. */
  readonly gaveUp: "attempts_exhausted" | "shutdown";
}

/** The data that names a source revocation; the fixed keys win over the revoker's details. */
export function atSourceData(revoked: RevokedAtSource): JsonObject {
  return { ...revoked.details, at_source: revoked.source };
}

/**
 * `credential.revoked` for a credential ended at its source because it was
 * completed, expired or discarded: the source's own record, beside the state
 * change (`credential.completed`, `credential.expired`) that caused it; a
 * discard changes no state. `reason` repeats `cause` for these; a reviewer's
 * revoke is recorded by the domain's `revokeCredential`, whose `reason` is the
 * reviewer's. `request.credential` is the credential ended (for a discard,
 * the one minted and never handed out).
 */
export function sourceRevokedEvent(args: {
  request: AccessRequest;
  cause: "completed" | "expired" | "discarded";
  revoked: RevokedAtSource;
  actor: Actor;
  now: number;
}): DomainEvent {
  const { request, cause, revoked, actor, now } = args;
  return {
    type: "credential.revoked",
    requestId: request.id,
    actor,
    time: now,
    data: {
      ...atSourceData(revoked),
      cause,
      reason: cause,
      credential_type: request.credentialType,
      credential_id: request.credential?.id ?? null,
    },
  };
}

/**
 * `credential.revocation_failed`: writ recorded the credential as expired, or
 * discarded one it minted, but could not end it at its source, so the source
 * never got its deny.
 */
export function sourceRevocationFailedEvent(args: {
  request: AccessRequest;
  cause: "expired" | "discarded";
  failure: SourceRevocationFailure;
  now: number;
}): DomainEvent {
  const { request, cause, failure, now } = args;
  return {
    type: "credential.revocation_failed",
    requestId: request.id,
    actor: SYSTEM_ACTOR,
    time: now,
    data: {
      cause,
      reason: cause,
      credential_type: request.credentialType,
      credential_id: request.credential?.id ?? null,
      at_source: failure.source,
      attempts: failure.attempts,
      error: failure.error,
      gave_up: failure.gaveUp,
    },
  };
}
