import { createHash } from "node:crypto";

/** STS's limit on an inline session policy, in characters. */
export const MAX_SESSION_POLICY_CHARS = 2048;

/** The session tags writ puts on every session: the deny policy matches on the grant. */
export const REQUEST_TAG = "writ-request";
export const GRANT_TAG = "writ-grant";

/** What one session may do: the approved action on the approved resource, until `notAfter`. */
export interface SessionGrant {
  readonly action: string;
  readonly resource: string;
  /** The approved expiry (ms); the policy stops working then even if the session lives on. */
  readonly notAfter: number;
  /** `aws:SourceIp` lists from the policy; every list must hold. */
  readonly sourceIps: readonly (readonly string[])[];
}

interface Statement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string;
  Resource: string;
  Condition: Record<string, Record<string, string | string[]>>;
}

/** An ISO 8601 time in whole seconds, rounded down so it never extends the grant. */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * The inline session policy: one statement allowing exactly the action on
 * exactly the resource, only before the approved expiry (STS sessions last at
 * least 15 minutes, a policy's TTL may be shorter) and from the networks the
 * policy names. Further source-IP lists become denies, so that each holds.
 */
export function sessionPolicy(grant: SessionGrant): string {
  const [firstIps, ...moreIps] = grant.sourceIps;
  const allow: Statement = {
    Sid: "WritGrant",
    Effect: "Allow",
    Action: grant.action,
    Resource: grant.resource,
    Condition: {
      DateLessThan: { "aws:CurrentTime": isoSeconds(grant.notAfter) },
      ...(firstIps !== undefined ? { IpAddress: { "aws:SourceIp": [...firstIps] } } : {}),
    },
  };
  const denies: Statement[] = moreIps.map((ips, index) => ({
    Sid: `WritSourceIp${index + 2}`,
    Effect: "Deny",
    Action: "*",
    Resource: "*",
    Condition: { NotIpAddress: { "aws:SourceIp": [...ips] } },
  }));
  return latin1Json({ Version: "2012-10-17", Statement: [allow, ...denies] });
}

/**
 * JSON whose text STS takes: a session policy may hold only Latin-1 characters
 * (besides tab and line breaks), while an object key may hold any. Characters
 * beyond Latin-1 are written as JSON escapes, one per UTF-16 unit, which IAM
 * reads back as the same characters; the escaped text is what STS measures.
 */
function latin1Json(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u0100-\uffff]/g,
    (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// SourceIdentity and RoleSessionName: 2-64 characters of letters, digits and _+=,.@-
const STS_NAME_CHAR = /[^\w+=,.@-]/g;
const STS_NAME_MAX = 64;

/**
 * The agent id as an STS `SourceIdentity`, which CloudTrail records on every
 * call the session makes. Ids that STS cannot take as they are (other
 * characters, too long, too short) are rewritten and get a hash of the real id,
 * so two agents never share one. The hash keeps 128 bits: the rewritten text
 * keeps only the start of the id, and a workload's id can hold claims its
 * owner picks, so a shorter hash could be made to match another agent's.
 */
export function sourceIdentity(agentId: string): string {
  const cleaned = agentId.replace(STS_NAME_CHAR, "-");
  if (cleaned === agentId && agentId.length >= 2 && agentId.length <= STS_NAME_MAX) return agentId;
  // base64url is letters, digits, - and _, all characters STS takes.
  const hash = createHash("sha256").update(agentId).digest().subarray(0, 16).toString("base64url");
  return `${cleaned.slice(0, STS_NAME_MAX - hash.length - 1)}-${hash}`;
}

/** `writ-<request id without its prefix>`: unique, and names the request in CloudTrail. */
export function roleSessionName(requestId: string): string {
  const short = requestId.replace(/^req_/, "").replace(STS_NAME_CHAR, "-");
  return `writ-${short}`.slice(0, STS_NAME_MAX);
}
