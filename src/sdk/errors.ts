import type { ErrorCode } from "../domain/errors.js";

/**
 * Codes the client itself produces, for failures that never got a writ answer:
 * - `unreachable`: the server could not be reached (connection refused, DNS, TLS, reset);
 * - `bad_response`: something answered, but not with writ's JSON (a proxy page, a redirect);
 * - `wait_timeout`: `waitForDecision` gave up while the request was still pending;
 * - `token_unavailable`: the client's `tokenProvider` failed or returned no usable token.
 */
export const CLIENT_ERROR_CODES = [
  "unreachable",
  "bad_response",
  "wait_timeout",
  "token_unavailable",
] as const;

export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

/**
 * A stable snake_case code: one of the API's (`approval_pending`,
 * `self_approval_forbidden`, …), one of the client's, or a code added by a newer
 * server, which is why any string is accepted.
 */
export type WritErrorCode = ErrorCode | ClientErrorCode | (string & {});

export interface WritApiErrorInit {
  /** The HTTP status, or 0 when no HTTP answer was received. */
  status: number;
  code: WritErrorCode;
  message: string;
  details?: Readonly<Record<string, unknown>> | undefined;
  cause?: unknown;
}

/**
 * Every failure of a call to writ: an error answer from the API (with the
 * API's `code`, `message` and `details`), or a client-side failure with one of
 * {@link CLIENT_ERROR_CODES}. Messages never carry the caller's key. Branch on
 * `code`, never on `message`.
 */
export class WritApiError extends Error {
  override readonly name = "WritApiError";
  /** The HTTP status, or 0 when the server gave no HTTP answer (`unreachable`, `wait_timeout`). */
  readonly status: number;
  readonly code: WritErrorCode;
  /** Structured, secret-free extras from the server, e.g. `{ request_id, policies }`. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(init: WritApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
  }
}

export function isWritApiError(value: unknown): value is WritApiError {
  return value instanceof WritApiError;
}
