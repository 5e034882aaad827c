/**
 * Stable error codes shared by the API, the SDK and the CLI. They are part of the
 * public contract: never rename one, only add.
 */
export const ERROR_CODES = [
  "bad_request",
  "invalid_json",
  "validation_failed",
  "payload_too_large",
  "unsupported_media_type",
  "unauthenticated",
  "wrong_principal_kind",
  "not_found",
  "method_not_allowed",
  "policy_denied",
  "on_behalf_of_not_allowed",
  "reason_required",
  "audience_required",
  "unsupported_credential_type",
  "self_approval_forbidden",
  "not_an_approver",
  "already_reviewed",
  "already_reviewed_after",
  "not_reviewable_after",
  "request_not_pending",
  "approval_pending",
  "request_denied",
  "request_cancelled",
  "request_revoked",
  "request_expired",
  "credential_already_issued",
  "not_revocable",
  "not_completable",
  "revocation_unavailable",
  "unknown_aws_action",
  "invalid_resource",
  "session_policy_too_large",
  "aws_role_not_configured",
  "aws_access_denied",
  "aws_throttled",
  "aws_unavailable",
  "aws_error",
  "oidc_issuer_untrusted",
  "oidc_token_invalid",
  "oidc_token_expired",
  "oidc_audience_mismatch",
  "oidc_claims_unmapped",
  "oidc_issuer_unavailable",
  "token_invalid",
  "token_replayed",
  "audience_mismatch",
  "conflict",
  "rate_limited",
  "too_many_waits",
  "store_unavailable",
  "audit_unavailable",
  "internal_error",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * An expected failure with a stable `code`. `message` is safe to show to the
 * caller: it never carries a secret. `details` holds structured, equally safe
 * extras (policy ids, the request id).
 */
export class WritError extends Error {
  override readonly name = "WritError";
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export function isWritError(value: unknown): value is WritError {
  return value instanceof WritError;
}
