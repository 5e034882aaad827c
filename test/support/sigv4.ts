import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** What a SigV4 check found: the signed scope, or why the signature is not good. */
export type SigV4Result =
  | {
      readonly ok: true;
      readonly accessKeyId: string;
      readonly region: string;
      readonly service: string;
    }
  | {
      readonly ok: false;
      readonly code: "IncompleteSignature" | "InvalidClientTokenId" | "SignatureDoesNotMatch";
      readonly message: string;
    };

export interface SignedRequest {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

/** How far a request's x-amz-date may be from now, as AWS allows. */
const MAX_SKEW_MS = 15 * 60_000;

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string) =>
  createHmac("sha256", key).update(data).digest();

/** RFC 3986 encoding, as SigV4 wants it (everything but unreserved characters). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function canonicalQuery(search: URLSearchParams): string {
  return [...search.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

function canonicalPath(pathname: string): string {
  // Non-S3 services encode each segment of the already-encoded path once more.
  return pathname
    .split("/")
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .map((segment) => uriEncode(segment))
    .join("/");
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  const joined = Array.isArray(value) ? value.join(",") : value;
  return joined.trim().replace(/\s+/g, " ");
}

/** The signing key for one day, region and service: HMAC chain from the secret. */
export function signingKey(secret: string, date: string, region: string, service: string) {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), "aws4_request");
}

/**
 * Recomputes a request's AWS Signature Version 4 with the secret of its access
 * key and compares it, in constant time, with the one it carries: canonical
 * request, string to sign, signing key, as AWS does.
 */
export function verifySigV4(
  request: SignedRequest,
  secretFor: (accessKeyId: string) => string | undefined,
  now = Date.now(),
): SigV4Result {
  const header = headerValue(request.headers, "authorization");
  const match = header === undefined ? null : AUTHORIZATION.exec(header);
  const amzDate = headerValue(request.headers, "x-amz-date");
  if (match === null || amzDate === undefined || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    return { ok: false, code: "IncompleteSignature", message: "Authorization header is invalid." };
  }
  const [
    ,
    accessKeyId = "",
    date = "",
    region = "",
    service = "",
    signedHeaders = "",
    signature = "",
  ] = match;
  const secret = secretFor(accessKeyId);
  if (secret === undefined) {
    return {
      ok: false,
      code: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
    };
  }
  const signedAt = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  if (!amzDate.startsWith(date) || Math.abs(now - signedAt) > MAX_SKEW_MS) {
    return { ok: false, code: "SignatureDoesNotMatch", message: "Signature expired." };
  }
  const names = signedHeaders.split(";");
  if (!names.includes("host") || names.some((n) => headerValue(request.headers, n) === undefined)) {
    return {
      ok: false,
      code: "SignatureDoesNotMatch",
      message: "The request signature we calculated does not match the signature you provided.",
    };
  }
  const url = new URL(request.url, "http://placeholder");
  const payloadHash = sha256(request.body);
  const declared = headerValue(request.headers, "x-amz-content-sha256");
  const canonicalRequest = [
    request.method,
    canonicalPath(url.pathname),
    canonicalQuery(url.searchParams),
    ...names.map((n) => `${n}:${headerValue(request.headers, n)}`),
    "",
    signedHeaders,
    declared ?? payloadHash,
  ].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonicalRequest)].join("\n");
  const expected = createHmac("sha256", signingKey(secret, date, region, service))
    .update(stringToSign)
    .digest();
  const given = Buffer.from(signature, "hex");
  if (
    (declared !== undefined && declared !== payloadHash) ||
    given.length !== expected.length ||
    !timingSafeEqual(given, expected)
  ) {
    return {
      ok: false,
      code: "SignatureDoesNotMatch",
      message:
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    };
  }
  return { ok: true, accessKeyId, region, service };
}
