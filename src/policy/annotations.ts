import { isIP } from "node:net";
import { MAX_APPROVAL_TIMEOUT_SECONDS, MAX_TTL_SECONDS } from "../domain/request.js";

/**
 * The approval terms a policy carries in its Cedar annotations, checked when the
 * policy set loads so that a typo never reaches a request.
 */

/** Approval terms of one policy, as read from its annotations. */
export interface PolicyTerms {
  /** Groups whose members may approve; empty when the policy allows at once. */
  readonly approvers: readonly string[];
  /** Distinct approvers needed; 0 when `approvers` is empty. */
  readonly quorum: number;
  /** Cap on the credential's lifetime, when the policy sets one. */
  readonly ttlSeconds: number | undefined;
  /** How long the request may wait for approval, when the policy sets it. */
  readonly approvalTimeoutSeconds: number | undefined;
  readonly reasonRequired: boolean;
  /** Context field names masked in notifications. */
  readonly sensitiveFields: readonly string[];
  /** CIDRs an AWS credential may be used from (`@aws_source_ip`), when the policy sets them. */
  readonly awsSourceIps?: readonly string[];
  /**
   * Whom to notify, and when, if the request is still pending
   * (`@escalate_after` with `@escalate_to`). Notifying only: it never changes
   * who may approve.
   */
  readonly escalation?: EscalationTerms;
  /** Groups told once the request is decided (`@notify`): a heads-up, never a prompt. */
  readonly notify?: readonly string[];
  /**
   * Groups one of whose members must review the request after the fact, once
   * its credential is issued (`@review_after`).
   */
  readonly reviewAfter?: readonly string[];
}

/** Escalation of a request nobody answered: when, and to whom. */
export interface EscalationTerms {
  /** Seconds after the request was created. */
  readonly afterSeconds: number;
  /** Groups whose destinations get the approval prompt then. */
  readonly groups: readonly string[];
}

/** Largest quorum a policy may ask for; more is almost certainly a typo. */
export const MAX_QUORUM = 20;

/** Annotations that carry approval terms; only `permit` policies may use them. */
const TERM_ANNOTATIONS = [
  "approvers",
  "quorum",
  "ttl",
  "approval_timeout",
  "reason",
  "sensitive",
  "aws_source_ip",
  "escalate_after",
  "escalate_to",
  "notify",
  "review_after",
] as const;

/**
 * Every annotation writ accepts. Anything else fails loading: a misspelled
 * `@approver` would otherwise be ignored and turn an approval into an allow.
 */
const KNOWN_ANNOTATIONS: ReadonlySet<string> = new Set(["id", "description", ...TERM_ANNOTATIONS]);

/**
 * Ids and field names: printable, no spaces, a sane length. Invisible format
 * characters (a zero-width space pasted along with a name) are refused too: a
 * `@sensitive` field spelt with one would mask nothing, and nothing would show why.
 */
const NAME = /^[^\s,"\\\p{Cc}\p{Cf}]{1,128}$/u;

/**
 * Group names as the configuration spells them (reviewers' `groups`, notification
 * routes). A name outside this form, such as a look-alike with a Cyrillic letter
 * or a zero-width space, could never match a configured group: its approvals,
 * heads-ups and reviews would silently reach nobody.
 */
const GROUP = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/;

/** A policy's annotations as Cedar reports them; a bare `@name` has value `null`. */
export type RawAnnotations = Readonly<Record<string, string | null>>;

/** What reading a policy's annotations produced: its terms, or what is wrong. */
export type TermsResult =
  | { readonly ok: true; readonly terms: PolicyTerms }
  | { readonly ok: false; readonly problems: readonly string[] };

/** The policy id an `@id` annotation names, or a problem; `undefined` without `@id`. */
export function readPolicyId(
  annotations: RawAnnotations,
): { readonly id: string } | { readonly problem: string } | undefined {
  if (!Object.hasOwn(annotations, "id")) return undefined;
  const value = annotations.id;
  if (value === null || value === undefined || !NAME.test(value)) {
    return {
      problem: `@id must be 1-128 characters without spaces, commas, quotes or invisible characters, got ${show(value)}`,
    };
  }
  return { id: value };
}

/** Reads and checks the approval terms of a policy with the given effect. */
export function readPolicyTerms(
  effect: "permit" | "forbid",
  annotations: RawAnnotations,
): TermsResult {
  const problems: string[] = [];
  for (const name of Object.keys(annotations)) {
    if (!KNOWN_ANNOTATIONS.has(name)) {
      problems.push(`unknown annotation @${name} (known: ${[...KNOWN_ANNOTATIONS].join(", ")})`);
    }
  }
  if (effect === "forbid") {
    for (const name of TERM_ANNOTATIONS) {
      if (Object.hasOwn(annotations, name)) {
        problems.push(`@${name} has no meaning on a forbid policy: a forbid always denies`);
      }
    }
  }

  const approvers = readGroupList(annotations, "approvers", problems);
  let quorum = approvers.length > 0 ? 1 : 0;
  if (Object.hasOwn(annotations, "quorum")) {
    const value = readPositiveInteger(annotations, "quorum", problems);
    if (value !== undefined && value > MAX_QUORUM) {
      problems.push(`@quorum must be at most ${MAX_QUORUM}, got "${value}"`);
    } else if (value !== undefined && approvers.length === 0) {
      problems.push("@quorum needs @approvers naming who may approve");
    } else if (value !== undefined) {
      quorum = value;
    }
  }
  const ttlSeconds = readSeconds(annotations, "ttl", MAX_TTL_SECONDS, "12 hours", problems);
  const approvalTimeoutSeconds = readSeconds(
    annotations,
    "approval_timeout",
    MAX_APPROVAL_TIMEOUT_SECONDS,
    "7 days",
    problems,
  );
  if (approvalTimeoutSeconds !== undefined && approvers.length === 0) {
    problems.push("@approval_timeout needs @approvers: without them nothing waits for approval");
  }
  const reasonRequired = readReason(annotations, problems);
  const sensitiveFields = readNameList(annotations, "sensitive", problems);
  const awsSourceIps = readCidrList(annotations, "aws_source_ip", problems);
  const escalation = readEscalation(annotations, approvers, approvalTimeoutSeconds, problems);
  // Group lists as `@approvers` takes them; an empty list is refused there too.
  const notify = readGroupList(annotations, "notify", problems);
  const reviewAfter = readGroupList(annotations, "review_after", problems);

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    terms: {
      approvers,
      quorum,
      ttlSeconds,
      approvalTimeoutSeconds,
      reasonRequired,
      sensitiveFields,
      ...(awsSourceIps !== undefined ? { awsSourceIps } : {}),
      ...(escalation !== undefined ? { escalation } : {}),
      ...(notify.length > 0 ? { notify } : {}),
      ...(reviewAfter.length > 0 ? { reviewAfter } : {}),
    },
  };
}

/**
 * `@escalate_after` and `@escalate_to`, which make sense only together and
 * only where something waits for approval. An escalation at or after the
 * policy's own approval timeout could never happen: the request would have
 * expired first.
 */
function readEscalation(
  annotations: RawAnnotations,
  approvers: readonly string[],
  approvalTimeoutSeconds: number | undefined,
  problems: string[],
): EscalationTerms | undefined {
  const hasAfter = Object.hasOwn(annotations, "escalate_after");
  const hasTo = Object.hasOwn(annotations, "escalate_to");
  if (!hasAfter && !hasTo) return undefined;
  const count = problems.length;
  const afterSeconds = readPositiveInteger(annotations, "escalate_after", problems);
  const groups = readGroupList(annotations, "escalate_to", problems);
  if (hasAfter !== hasTo) {
    problems.push(
      hasAfter
        ? "@escalate_after needs @escalate_to naming the groups to notify"
        : "@escalate_to needs @escalate_after saying when, in seconds",
    );
  }
  if (approvers.length === 0) {
    problems.push(
      "@escalate_after and @escalate_to need @approvers: without them nothing waits for approval",
    );
  }
  if (
    afterSeconds !== undefined &&
    approvalTimeoutSeconds !== undefined &&
    afterSeconds >= approvalTimeoutSeconds
  ) {
    problems.push(
      `@escalate_after must be less than @approval_timeout ("${approvalTimeoutSeconds}"), ` +
        `got "${afterSeconds}": the request would expire first`,
    );
  }
  if (problems.length > count || afterSeconds === undefined) return undefined;
  return { afterSeconds, groups };
}

/** At most this many networks in one `@aws_source_ip`: each one grows the session policy. */
const MAX_CIDRS = 20;

/**
 * A comma-separated list of IPv4/IPv6 addresses or CIDR blocks, as
 * `aws:SourceIp` takes them; `undefined` without the annotation.
 */
function readCidrList(
  annotations: RawAnnotations,
  name: string,
  problems: string[],
): string[] | undefined {
  if (!Object.hasOwn(annotations, name)) return undefined;
  const value = annotations[name];
  const items = (value ?? "").split(",").map((item) => item.trim());
  const bad = items.filter((item) => !isCidr(item));
  if (value === null || value === undefined || bad.length > 0 || items.length > MAX_CIDRS) {
    problems.push(
      `@${name} must be a comma-separated list of at most ${MAX_CIDRS} IP addresses or CIDR ` +
        `blocks (e.g. "203.0.113.0/24, 2001:db8::/32"), got ${show(value)}`,
    );
    return undefined;
  }
  return [...new Set(items)];
}

function isCidr(text: string): boolean {
  const [address = "", prefix, extra] = text.split("/");
  // Node accepts an IPv6 zone index ("fe80::1%eth0"): it names a local
  // interface, and AWS refuses it in a session policy.
  if (extra !== undefined || address.includes("%")) return false;
  const version = isIP(address);
  if (version === 0) return false;
  if (prefix === undefined) return true;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

function readNameList(annotations: RawAnnotations, name: string, problems: string[]): string[] {
  return readList(
    annotations,
    name,
    NAME,
    "non-empty names without spaces, quotes or invisible characters",
    problems,
  );
}

function readGroupList(annotations: RawAnnotations, name: string, problems: string[]): string[] {
  return readList(
    annotations,
    name,
    GROUP,
    "group names (letters, digits and _ . @ + -, at most 128, as in the configuration)",
    problems,
  );
}

function readList(
  annotations: RawAnnotations,
  name: string,
  pattern: RegExp,
  spelled: string,
  problems: string[],
): string[] {
  if (!Object.hasOwn(annotations, name)) return [];
  const value = annotations[name];
  const items = (value ?? "").split(",").map((item) => item.trim());
  const bad = items.filter((item) => !pattern.test(item));
  if (value === null || value === undefined || bad.length > 0) {
    problems.push(`@${name} must be a comma-separated list of ${spelled}, got ${show(value)}`);
    return [];
  }
  return [...new Set(items)];
}

function readPositiveInteger(
  annotations: RawAnnotations,
  name: string,
  problems: string[],
): number | undefined {
  if (!Object.hasOwn(annotations, name)) return undefined;
  const value = annotations[name];
  // Digits only: "1e3", "0x10", " 5" and "2.0" are refused rather than guessed at.
  const parsed =
    value !== null && value !== undefined && /^[1-9][0-9]*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed)) {
    problems.push(`@${name} must be a positive integer, got ${show(value)}`);
    return undefined;
  }
  return parsed;
}

/** A positive number of seconds, at most `max` (`spelled` says it in words). */
function readSeconds(
  annotations: RawAnnotations,
  name: string,
  max: number,
  spelled: string,
  problems: string[],
): number | undefined {
  const seconds = readPositiveInteger(annotations, name, problems);
  if (seconds === undefined || seconds <= max) return seconds;
  problems.push(`@${name} must be at most ${max} (${spelled}), got "${seconds}"`);
  return undefined;
}

function readReason(annotations: RawAnnotations, problems: string[]): boolean {
  if (!Object.hasOwn(annotations, "reason")) return false;
  const value = annotations.reason;
  if (value === "required") return true;
  if (value === "optional") return false;
  problems.push(`@reason must be "required" or "optional", got ${show(value)}`);
  return false;
}

function show(value: string | null | undefined): string {
  return value === null || value === undefined ? "no value" : JSON.stringify(value);
}
