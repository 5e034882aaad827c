import type { AccessRequest, CredentialType } from "../domain/request.js";
import type { RevocationCause, RevokedAtSource } from "../domain/revocation.js";

/**
 * Ends an issued credential at its source, for credentials that outlive writ's
 * own record of them (an AWS STS session cannot be recalled, so its grant is
 * denied through IAM). A JWT needs none: once its request leaves `issued`, it no
 * longer consumes.
 *
 * Called before the state change is committed, so a failure leaves the request
 * `issued` and the caller can retry; `revoke` must therefore be idempotent.
 * It throws on failure; the use case answers `revocation_unavailable`.
 */
export interface CredentialRevoker {
  readonly type: CredentialType;
  /** Where it ends credentials, recorded as `at_source` in events (`aws-iam`). */
  readonly source: string;
  /**
   * Ends `request`'s credential (`request.credential` is set). For `completed`
   * and `revoked` the status is still `issued`. For `expired` writ's record of
   * it has just expired (status `expired`) while the session may live on at its
   * source (an STS session lasts at least 15 minutes); that call comes after
   * the expiry is committed, and is retried in the background.
   *
   * Resolves with what it did, recorded in `credential.revoked`, or undefined
   * when there was nothing left to end (the session is over at its source).
   */
  revoke(request: AccessRequest, reason: RevocationCause): Promise<RevokedAtSource | undefined>;
}
