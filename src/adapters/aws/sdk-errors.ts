import { WritError } from "../../domain/errors.js";
import type { Logger } from "../../ports/logger.js";

const DENIED = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "UnrecognizedClientException",
  "IncompleteSignature",
  "RegionDisabledException",
]);
const THROTTLED = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "SlowDown",
]);
const TOO_LARGE = new Set(["PackedPolicyTooLarge", "PackedPolicyTooLargeException"]);
const UNAVAILABLE = new Set([
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "InternalFailure",
  "InternalError",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
]);

/**
 * What the SDK throws when it cannot load writ's own credentials: no provider
 * in its default chain had any (a metadata service that did not answer ends
 * the chain the same way), or an SSO token could not be loaded. No request
 * was sent.
 */
const NO_CREDENTIALS = new Set(["CredentialsProviderError", "TokenProviderError"]);

/** What an operator does about {@link NO_CREDENTIALS}, for the log and the caller alike. */
const CREDENTIALS_FIX =
  "give writ an AWS identity the SDK's credential chain finds (environment variables, web identity, an ECS or EC2 role, SSO or a profile), or check that its metadata service answers";

/** Whether `error` says writ has no usable AWS credentials of its own (nothing reached AWS). */
export function isMissingCredentials(error: unknown): boolean {
  const code = awsErrorCode(error);
  return code !== undefined && NO_CREDENTIALS.has(code);
}

interface SdkErrorShape {
  name?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

/** The AWS error code, if it looks like one (so that nothing else reaches a log or a caller). */
export function awsErrorCode(error: unknown): string | undefined {
  const name = (error as SdkErrorShape | null)?.name;
  return typeof name === "string" && /^[A-Za-z][A-Za-z0-9.]{0,63}$/.test(name) ? name : undefined;
}

/**
 * Turns a failed AWS SDK call into a coded error with a fixed message. The SDK's
 * own message is never passed on: it can name writ's own role and account. What
 * is logged is the AWS error code, HTTP status and AWS request id, nothing else.
 */
export function awsFailure(
  error: unknown,
  operation: string,
  logger: Logger,
  fields: Record<string, unknown> = {},
): WritError {
  if (error instanceof WritError) return error;
  const shape = (error ?? {}) as SdkErrorShape;
  const code = awsErrorCode(error);
  if (code !== undefined && NO_CREDENTIALS.has(code)) {
    // Not AWS failing: writ itself is not set up (or its metadata service is
    // briefly down, which ends the SDK's chain with the same error). Still 503,
    // because in that second case a retry helps. The SDK's own message is not
    // passed on: it can name profiles and file paths.
    logger.error(
      `AWS ${operation} not sent: writ has no usable AWS credentials of its own; ${CREDENTIALS_FIX}`,
      { ...fields, operation, aws_error: code },
    );
    return new WritError(
      "aws_unavailable",
      `writ has no usable AWS credentials of its own, so ${operation} was not sent; an operator must ${CREDENTIALS_FIX}. Try again once that is done.`,
      { aws_error: code },
    );
  }
  const status =
    typeof shape.$metadata?.httpStatusCode === "number"
      ? shape.$metadata.httpStatusCode
      : undefined;
  const awsRequestId =
    typeof shape.$metadata?.requestId === "string" &&
    /^[\w-]{1,128}$/.test(shape.$metadata.requestId)
      ? shape.$metadata.requestId
      : undefined;
  logger.warn(`AWS ${operation} failed`, {
    ...fields,
    aws_error: code ?? "unknown",
    ...(status !== undefined ? { http_status: status } : {}),
    ...(awsRequestId !== undefined ? { aws_request_id: awsRequestId } : {}),
  });
  const details = code === undefined ? undefined : { aws_error: code };
  if (code !== undefined && TOO_LARGE.has(code)) {
    return new WritError(
      "session_policy_too_large",
      "AWS found the session policy and tags too large once packed (PackedPolicyTooLarge).",
      details,
    );
  }
  if (code !== undefined && THROTTLED.has(code)) {
    return new WritError(
      "aws_throttled",
      `AWS is throttling ${operation}; try again shortly.`,
      details,
    );
  }
  if (code !== undefined && DENIED.has(code)) {
    return new WritError(
      "aws_access_denied",
      `AWS refused writ's ${operation}: check writ's own AWS credentials and the role's trust policy.`,
      details,
    );
  }
  // No HTTP answer at all (connection refused, DNS, TLS, timeout) or a 5xx.
  if (
    (code !== undefined && UNAVAILABLE.has(code)) ||
    status === undefined ||
    status >= 500 ||
    shape.$fault === "server"
  ) {
    return new WritError(
      "aws_unavailable",
      `AWS could not be reached for ${operation}; try again.`,
      details,
    );
  }
  return new WritError("aws_error", `AWS rejected writ's ${operation}.`, details);
}
