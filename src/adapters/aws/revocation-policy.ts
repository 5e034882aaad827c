import { GRANT_TAG, isoSeconds } from "./session-policy.js";

/**
 * IAM's limit on the inline policies of one role, all together, in characters
 * without whitespace.
 */
export const ROLE_INLINE_POLICIES_MAX_CHARS = 10_240;

/** The longest role session STS ever issues (12 hours). */
export const MAX_STS_SESSION_MS = 43_200_000;

/**
 * How much later than writ's own clock AWS may see things: an entry is pruned only
 * this long after its session must have ended, and a time-based deny reaches
 * this far past the sessions it is meant for.
 */
export const CLOCK_SKEW_MS = 60_000;

/**
 * Whether a session that ends at `endsAt` (ms) may still work at AWS at `now`
 * (ms, writ's clock). AWS's clock may run up to {@link CLOCK_SKEW_MS} behind
 * writ's, so a session is over only that long after its end: every decision
 * that a deny is no longer needed (not writing it, pruning it, no longer
 * checking it, forgetting it) is made with this one rule.
 */
export function sessionMayBeLive(endsAt: number, now: number): boolean {
  return now <= endsAt + CLOCK_SKEW_MS;
}

const ENDED_GRANTS_SID = "WritEndedGrants";
const ENDED_BEFORE_SID = "WritEndedBefore";
const PRINCIPAL_GRANT = `aws:PrincipalTag/${GRANT_TAG}`;
const GRANT = /^g(\d{10})_[A-Za-z0-9_-]{22}$/;

/**
 * A grant id: `g<when the session ends, in epoch seconds>_<128 random bits>`.
 * Carrying the end lets any writ replica prune a deny entry from the policy
 * alone, once its session is over, without keeping state of its own.
 */
export function grantId(sessionEndsAt: number, random: Uint8Array): string {
  const seconds = String(Math.ceil(sessionEndsAt / 1000)).padStart(10, "0");
  return `g${seconds}_${Buffer.from(random).toString("base64url")}`;
}

/** When a grant's session ends (ms), or undefined for an id writ did not make. */
export function grantSessionEnd(grant: string): number | undefined {
  const match = GRANT.exec(grant);
  return match === null ? undefined : Number(match[1]) * 1000;
}

/** writ's inline deny policy on one role, as data. */
export interface RevocationDocument {
  /** Grant ids whose sessions are denied everything. */
  readonly grants: readonly string[];
  /**
   * Every writ session issued before this time (ms) is denied: the compact form
   * used when the list of grants no longer fits in IAM's size limit.
   */
  readonly endedBefore?: number;
  /** Statements writ did not write, or cannot read: kept as they are, never dropped. */
  readonly foreign: readonly unknown[];
}

export const EMPTY_REVOCATIONS: RevocationDocument = { grants: [], foreign: [] };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function denyAll(statement: Record<string, unknown>): boolean {
  return statement.Effect === "Deny" && statement.Action === "*" && statement.Resource === "*";
}

function readGrants(statement: Record<string, unknown>): string[] | undefined {
  if (statement.Sid !== ENDED_GRANTS_SID || !denyAll(statement)) return undefined;
  const condition = statement.Condition;
  if (!isRecord(condition) || Object.keys(condition).length !== 1) return undefined;
  const equals = condition.StringEquals;
  if (!isRecord(equals) || Object.keys(equals).length !== 1) return undefined;
  const values = equals[PRINCIPAL_GRANT];
  const list = typeof values === "string" ? [values] : values;
  if (!Array.isArray(list) || !list.every((v) => typeof v === "string")) return undefined;
  return list as string[];
}

function readEndedBefore(statement: Record<string, unknown>): number | undefined {
  if (statement.Sid !== ENDED_BEFORE_SID || !denyAll(statement)) return undefined;
  const condition = statement.Condition;
  if (!isRecord(condition) || Object.keys(condition).length !== 2) return undefined;
  const before = condition.DateLessThan;
  const tagged = condition.Null;
  if (!isRecord(before) || !isRecord(tagged) || tagged[PRINCIPAL_GRANT] !== "false") {
    return undefined;
  }
  const time = before["aws:TokenIssueTime"];
  const ms = typeof time === "string" ? Date.parse(time) : Number.NaN;
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Reads the policy as IAM holds it. A document writ cannot parse is kept whole as
 * foreign: a deny that cannot be read is never thrown away.
 */
export function parseRevocationPolicy(text: string | undefined): RevocationDocument {
  if (text === undefined) return EMPTY_REVOCATIONS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { grants: [], foreign: [text] };
  }
  const statements = isRecord(parsed) ? parsed.Statement : undefined;
  const list = Array.isArray(statements) ? statements : isRecord(statements) ? [statements] : [];
  if (!isRecord(parsed) || list.length === 0) return { grants: [], foreign: [parsed] };
  const grants: string[] = [];
  const foreign: unknown[] = [];
  let endedBefore: number | undefined;
  for (const statement of list) {
    const ownGrants = isRecord(statement) ? readGrants(statement) : undefined;
    const ownBefore = isRecord(statement) ? readEndedBefore(statement) : undefined;
    if (ownGrants !== undefined) grants.push(...ownGrants);
    else if (ownBefore !== undefined) endedBefore = Math.max(endedBefore ?? 0, ownBefore);
    else foreign.push(statement);
  }
  return {
    grants: [...new Set(grants)],
    ...(endedBefore !== undefined ? { endedBefore } : {}),
    foreign,
  };
}

/**
 * Drops the entries whose sessions have certainly ended by `now`, except the
 * grants in `keep`: sessions writ still holds live by an end it knows better
 * than the grant id does (STS's, which may be later on a clock ahead of writ's).
 */
export function pruneRevocations(
  doc: RevocationDocument,
  now: number,
  keep: ReadonlySet<string> = new Set(),
): RevocationDocument {
  const grants = doc.grants.filter((grant) => {
    const end = grantSessionEnd(grant);
    // An id writ did not make has no known end: it stays.
    return end === undefined || keep.has(grant) || sessionMayBeLive(end, now);
  });
  const keepBefore =
    doc.endedBefore !== undefined && sessionMayBeLive(doc.endedBefore + MAX_STS_SESSION_MS, now);
  return {
    grants,
    ...(keepBefore && doc.endedBefore !== undefined ? { endedBefore: doc.endedBefore } : {}),
    foreign: doc.foreign,
  };
}

export function withGrant(doc: RevocationDocument, grant: string): RevocationDocument {
  return doc.grants.includes(grant) ? doc : { ...doc, grants: [...doc.grants, grant] };
}

/**
 * The compact form: one time-based deny replaces the list. It denies every writ
 * session of the role issued before `before`, the one being ended and any others
 * still live (whose agents must ask again). Used only when the list cannot fit.
 */
export function collapseRevocations(doc: RevocationDocument, before: number): RevocationDocument {
  return { grants: [], endedBefore: Math.max(before, doc.endedBefore ?? 0), foreign: doc.foreign };
}

/** Whether the document denies the session of `grant`, issued at `issuedAt`. */
export function deniesGrant(doc: RevocationDocument, grant: string, issuedAt: number): boolean {
  return doc.grants.includes(grant) || (doc.endedBefore ?? 0) > issuedAt + CLOCK_SKEW_MS;
}

/** The policy document IAM is given; compact JSON, as IAM counts it. */
export function renderRevocationPolicy(doc: RevocationDocument): string {
  const statements: unknown[] = [...doc.foreign];
  if (doc.grants.length > 0) {
    statements.push({
      Sid: ENDED_GRANTS_SID,
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { StringEquals: { [PRINCIPAL_GRANT]: [...doc.grants] } },
    });
  }
  if (doc.endedBefore !== undefined) {
    statements.push({
      Sid: ENDED_BEFORE_SID,
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: {
        DateLessThan: { "aws:TokenIssueTime": isoSeconds(doc.endedBefore) },
        Null: { [PRINCIPAL_GRANT]: "false" },
      },
    });
  }
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}
