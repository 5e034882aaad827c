import type { AccessRequest, CredentialType } from "../domain/request.js";

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
  /**
   * Ends `request`'s credential (`request.credential` is set and the status is
   * `issued`). `expired`: writ's record of it has just expired while the session
   * may live on at its source (an STS session lasts at least 15 minutes); that
   * call comes after the expiry is committed, and a failure is only logged.
   */
  revoke(request: AccessRequest, reason: "completed" | "revoked" | "expired"): Promise<void>;
}
