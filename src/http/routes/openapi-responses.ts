import { ErrorResponse } from "../schemas.js";

export const security = [{ bearer: [] }];
export const json = <T>(schema: T) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ErrorResponse) });

export interface CallShape {
  /** The path names a request by `{id}`. */
  id?: boolean;
  /** The call takes a JSON body. */
  body?: boolean;
}

/**
 * The error responses of a call that needs a key: the route's own (by status,
 * codes in a sentence) together with those every such call can answer, so that
 * the document lists every status a client may meet.
 */
export function keyedErrors(own: Readonly<Record<number, string>>, shape: CallShape = {}) {
  const shared: Record<number, string> = {
    400: shape.body
      ? "validation_failed, invalid_json, bad_request"
      : "validation_failed, bad_request",
    401: "unauthenticated, oidc_issuer_untrusted, oidc_token_invalid, oidc_token_expired, oidc_audience_mismatch, oidc_claims_unmapped: checked before the body is read",
    403: "wrong_principal_kind: checked before the body, the path and the query are read",
    413: "payload_too_large",
    500: "internal_error",
    503: "store_unavailable, audit_unavailable, oidc_issuer_unavailable",
  };
  if (shape.id) shared[404] = "not_found";
  if (shape.body) shared[415] = "unsupported_media_type";
  const statuses = [...new Set([...Object.keys(own), ...Object.keys(shared)].map(Number))].sort(
    (a, b) => a - b,
  );
  return Object.fromEntries(
    statuses.map((status) => {
      const parts = [own[status], shared[status]].filter((p) => p !== undefined);
      return [status, error(parts.join("; "))];
    }),
  );
}
