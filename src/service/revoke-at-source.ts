import { WritError } from "../domain/errors.js";
import type { DomainEvent } from "../domain/events.js";
import { SYSTEM_ACTOR } from "../domain/principal.js";
import type { AccessRequest, IssuedCredential } from "../domain/request.js";
import {
  type RevokedAtSource,
  type SourceRevocationFailure,
  sourceRevocationFailedEvent,
  sourceRevokedEvent,
} from "../domain/revocation.js";
import type { CredentialRevoker } from "../ports/revoker.js";
import { systemTimer, type Timer } from "../ports/timer.js";
import type { BrokerDeps } from "./deps.js";

/**
 * Waits before the second and third attempt to end an expired credential at its
 * source: three attempts over a minute, beside the SDK's own quick retries of
 * each call. Long enough to ride out a throttled or briefly unreachable IAM;
 * short enough that the record of a failure comes while it still matters.
 */
export const EXPIRY_REVOCATION_RETRY_DELAYS_MS: readonly number[] = [15_000, 45_000];

/**
 * Ends an issued credential at its source through the revoker for its type,
 * if there is one, and returns what the revoker did for the state change to
 * record (`credential.revoked`, in the same commit). Runs before the state
 * change is committed: when it fails, the request stays `issued` (true: the
 * credential may still work) and the caller retries, rather than writ
 * recording an end that did not happen. Nothing is called while the audit log
 * cannot record the change (`audit_unavailable`).
 */
export async function revokeAtSource(
  deps: Pick<BrokerDeps, "revokers" | "logger" | "auditLog">,
  request: AccessRequest,
  reason: "completed" | "revoked",
): Promise<RevokedAtSource | undefined> {
  if (request.status !== "issued" || request.credential === undefined) return undefined;
  const revoker = deps.revokers?.[request.credentialType];
  if (revoker === undefined) return undefined;
  // Rule 3 holds at the source too: a log that cannot take the record of who
  // ended the credential, and why, leaves the credential as it is.
  if (!deps.auditLog.writable()) {
    throw new WritError(
      "audit_unavailable",
      "The audit log cannot record changes now; try again later.",
    );
  }
  try {
    return await revoker.revoke(request, reason);
  } catch (error) {
    deps.logger.error("revoking a credential at its source failed", {
      request_id: request.id,
      credential_type: request.credentialType,
      error: (error as Error).name,
    });
    throw new WritError(
      "revocation_unavailable",
      "The credential could not be ended at its source; it is still issued. Try again.",
    );
  }
}

type BackgroundDeps = Pick<BrokerDeps, "revokers" | "logger" | "clock" | "timer" | "stopping">;

/**
 * After writ has recorded an issued credential as expired: ends it at its source
 * too, for types whose sessions can outlive the approved lifetime (an STS session
 * lasts at least 15 minutes, a policy's TTL may be shorter). Runs in the
 * background so that the read or sweep that noticed the expiry is not held up,
 * and `record` appends its outcome: `credential.revoked` once the revoker
 * succeeds, or, after {@link EXPIRY_REVOCATION_RETRY_DELAYS_MS} run out (or writ
 * shuts down first), an error log and `credential.revocation_failed`. The
 * expiry stands either way; the returned promise never rejects.
 */
export function revokeExpiredAtSource(
  deps: BackgroundDeps,
  expired: AccessRequest,
  record: (events: readonly DomainEvent[]) => Promise<unknown>,
): Promise<void> {
  return endInBackground(deps, expired, "expired", record);
}

/**
 * Ends at its source a credential that was minted for `request` and never
 * handed out: another collect committed first, or its own commit or log write
 * failed (or its reply was lost, so whether it was committed is unknown). Its
 * secret never left this process, yet an STS session lives at AWS until its
 * end whether or not anyone holds it: writ denies it rather than leave a live
 * session that no record names as handed out. In the background, with the
 * retries and records of {@link revokeExpiredAtSource} (`cause: "discarded"`);
 * the returned promise never rejects. Nothing to do for a type without a
 * revoker: a JWT that never left matches no record and cannot be presented.
 */
export function revokeDiscardedAtSource(
  deps: BackgroundDeps,
  request: AccessRequest,
  discarded: IssuedCredential,
  record: (events: readonly DomainEvent[]) => Promise<unknown>,
): Promise<void> {
  return endInBackground(deps, { ...request, credential: discarded }, "discarded", record);
}

function endInBackground(
  deps: BackgroundDeps,
  request: AccessRequest,
  cause: "expired" | "discarded",
  record: (events: readonly DomainEvent[]) => Promise<unknown>,
): Promise<void> {
  const revoker = deps.revokers?.[request.credentialType];
  if (request.credential === undefined || revoker === undefined) return Promise.resolve();
  return endAtSource(deps, revoker, request, cause, record).catch((error: unknown) => {
    deps.logger.error("recording the end of a credential at its source failed", {
      request_id: request.id,
      credential_type: request.credentialType,
      credential_id: request.credential?.id,
      cause,
      error: (error as Error).name,
    });
  });
}

async function endAtSource(
  deps: BackgroundDeps,
  revoker: CredentialRevoker,
  request: AccessRequest,
  cause: "expired" | "discarded",
  record: (events: readonly DomainEvent[]) => Promise<unknown>,
): Promise<void> {
  const timer = deps.timer ?? systemTimer;
  let attempts = 0;
  let error = "internal_error";
  let gaveUp: SourceRevocationFailure["gaveUp"] = "attempts_exhausted";
  for (;;) {
    attempts++;
    let revoked: RevokedAtSource | undefined;
    try {
      revoked = await revoker.revoke(request, cause);
    } catch (caught) {
      error = caught instanceof WritError ? caught.code : "internal_error";
      const waitMs = EXPIRY_REVOCATION_RETRY_DELAYS_MS[attempts - 1];
      deps.logger.warn(`ending ${ENDED[cause]} credential at its source failed`, {
        request_id: request.id,
        credential_type: request.credentialType,
        credential_id: request.credential?.id,
        attempt: attempts,
        error,
        ...(waitMs !== undefined ? { retry_in_ms: waitMs } : {}),
      });
      if (waitMs === undefined) break;
      // A shutdown cancels the wait, so the failure is recorded while the store is open.
      if (!(await waitUnlessStopping(timer, waitMs, deps.stopping))) {
        gaveUp = "shutdown";
        break;
      }
      continue;
    }
    if (revoked === undefined) return;
    await record([
      sourceRevokedEvent({ request, cause, revoked, actor: SYSTEM_ACTOR, now: deps.clock.now() }),
    ]);
    return;
  }
  const failure: SourceRevocationFailure = { source: revoker.source, attempts, error, gaveUp };
  // Not the end of the session: its policy's own expiry bounds it; the deny was a second layer.
  deps.logger.error(`ending ${ENDED[cause]} credential at its source failed; gave up`, {
    request_id: request.id,
    credential_type: request.credentialType,
    credential_id: request.credential?.id,
    at_source: failure.source,
    attempts,
    error,
    gave_up: gaveUp,
  });
  await record([sourceRevocationFailedEvent({ request, cause, failure, now: deps.clock.now() })]);
}

const ENDED = { expired: "an expired", discarded: "a discarded" } as const;

/** Waits `ms`; false if writ began to shut down before or during the wait. */
async function waitUnlessStopping(
  timer: Timer,
  ms: number,
  stopping: AbortSignal | undefined,
): Promise<boolean> {
  if (stopping?.aborted) return false;
  try {
    await timer.sleep(ms, stopping);
  } catch {
    // The timer rejects only when the signal aborts.
  }
  return !stopping?.aborted;
}
