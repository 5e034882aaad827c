import type { ApprovalRequirement, Decision, Escalation } from "../domain/decision.js";
import type { LoadedPolicy } from "./policy-set.js";

/** Terms that apply when no determining policy sets its own. */
export interface PolicyDefaults {
  /** Credential lifetime cap when no determining permit has `@ttl`. */
  readonly ttlSeconds: number;
  /** Approval wait when no determining permit has `@approval_timeout`. */
  readonly approvalTimeoutSeconds: number;
}

/** What Cedar answered, reduced to what the rules below need. */
export interface CedarOutcome {
  readonly decision: "allow" | "deny";
  /** Ids of the satisfied policies that determined the decision. */
  readonly reasons: readonly string[];
  /** Ids of the policies whose evaluation failed. */
  readonly errored: readonly string[];
}

/**
 * Every context field any loaded policy marks `@sensitive`. A deny masks all of
 * them: the permit that would have named a field may be exactly the one a
 * forbid or an evaluation error overruled, and over-masking costs nothing.
 */
export function allSensitiveFields(policies: ReadonlyMap<string, LoadedPolicy>): string[] {
  const fields = new Set<string>();
  for (const policy of policies.values()) {
    for (const field of policy.terms.sensitiveFields) fields.add(field);
  }
  return [...fields].sort();
}

/** A deny naming `policies`, with default terms, nothing to approve, and `sensitiveFields` masked. */
export function denyDecision(
  policies: readonly string[],
  defaults: PolicyDefaults,
  sensitiveFields: readonly string[] = [],
): Decision {
  return {
    effect: "deny",
    policies: [...new Set(policies)].sort(),
    requirements: [],
    ttlSeconds: defaults.ttlSeconds,
    approvalTimeoutSeconds: defaults.approvalTimeoutSeconds,
    reasonRequired: false,
    sensitiveFields: [...sensitiveFields],
  };
}

/**
 * Turns Cedar's answer into writ's decision:
 * 1. a satisfied `forbid` denies, naming the forbids;
 * 2. any evaluation error denies (fail closed), naming the policies that errored;
 * 3. nothing permits: deny, naming nothing;
 * 4. otherwise the satisfied permits decide, and the strictest wins: `approve` if
 *    any names approvers (one requirement each), the smallest TTL and approval
 *    timeout (a permit without `@ttl`, or with approvers but no
 *    `@approval_timeout`, counts as the server default), a reason if any asks for one, the union of sensitive fields,
 *    every permit's `@aws_source_ip` list (each must hold), the earliest
 *    escalation to the union of the escalation groups, and the union of the
 *    `@notify` and of the `@review_after` groups (nobody a permit asked to
 *    tell, or to look back, is left out).
 */
export function combineDecision(
  outcome: CedarOutcome,
  policies: ReadonlyMap<string, LoadedPolicy>,
  defaults: PolicyDefaults,
): Decision {
  const deny = (named: readonly string[]) =>
    denyDecision(named, defaults, allSensitiveFields(policies));
  const determining: LoadedPolicy[] = [];
  for (const id of outcome.reasons) {
    const policy = policies.get(id);
    // Cedar naming a policy this set does not hold means the two disagree: deny.
    if (policy === undefined) return deny([id]);
    determining.push(policy);
  }
  const forbids = determining.filter((policy) => policy.effect === "forbid");
  if (forbids.length > 0) return deny(ids(forbids));
  if (outcome.errored.length > 0) return deny(outcome.errored);
  const permits = determining.filter((policy) => policy.effect === "permit");
  if (outcome.decision !== "allow" || permits.length === 0) return deny([]);

  permits.sort((a, b) => compare(a.id, b.id));
  const requirements = mergeRequirements(permits);
  const awsSourceIps = permits.flatMap((policy) =>
    policy.terms.awsSourceIps === undefined ? [] : [policy.terms.awsSourceIps],
  );
  // Only permits that wait for approval have a say in how long it waits: one that
  // allows at once cannot carry `@approval_timeout`, and its silence is not a limit.
  const approvalTimeoutSeconds = smallest(
    permits
      .filter((policy) => policy.terms.approvers.length > 0)
      .map((policy) => policy.terms.approvalTimeoutSeconds),
    defaults.approvalTimeoutSeconds,
  );
  const escalation = combineEscalations(permits, approvalTimeoutSeconds);
  const notify = unionOf(permits.map((policy) => policy.terms.notify));
  const reviewAfter = unionOf(permits.map((policy) => policy.terms.reviewAfter));
  return {
    effect: requirements.length > 0 ? "approve" : "allow",
    policies: ids(permits),
    requirements,
    ttlSeconds: smallest(
      permits.map((policy) => policy.terms.ttlSeconds),
      defaults.ttlSeconds,
    ),
    approvalTimeoutSeconds,
    reasonRequired: permits.some((policy) => policy.terms.reasonRequired),
    sensitiveFields: [...new Set(permits.flatMap((policy) => policy.terms.sensitiveFields))].sort(),
    ...(awsSourceIps.length > 0 ? { awsSourceIps } : {}),
    ...(escalation !== undefined ? { escalation } : {}),
    ...(notify.length > 0 ? { notify } : {}),
    ...(reviewAfter.length > 0 ? { reviewAfter } : {}),
  };
}

/** Every group of the lists, sorted, without repeats. */
function unionOf(lists: readonly (readonly string[] | undefined)[]): string[] {
  return [...new Set(lists.flatMap((list) => list ?? []))].sort(compare);
}

/**
 * The strictest escalation the permits ask for: the earliest time any of them
 * names, to every group any of them names, so no permit's escalation group is
 * left untold or told later than it asked. One that would come at or after
 * the approval timeout is dropped: the request has expired by then.
 */
function combineEscalations(
  permits: readonly LoadedPolicy[],
  approvalTimeoutSeconds: number,
): Escalation | undefined {
  const asked = permits.flatMap((policy) =>
    policy.terms.escalation === undefined ? [] : [policy.terms.escalation],
  );
  if (asked.length === 0) return undefined;
  const afterSeconds = Math.min(...asked.map((e) => e.afterSeconds));
  if (afterSeconds >= approvalTimeoutSeconds) return undefined;
  return { afterSeconds, groups: [...new Set(asked.flatMap((e) => e.groups))].sort(compare) };
}

/**
 * One requirement per permit naming approvers. Requirements over the same groups
 * collapse into the one with the largest quorum: it implies the others.
 */
function mergeRequirements(permits: readonly LoadedPolicy[]): ApprovalRequirement[] {
  const byGroups = new Map<string, ApprovalRequirement>();
  for (const { terms } of permits) {
    if (terms.approvers.length === 0) continue;
    const key = JSON.stringify([...terms.approvers].sort());
    const existing = byGroups.get(key);
    if (existing === undefined || existing.quorum < terms.quorum) {
      byGroups.set(key, { groups: existing?.groups ?? [...terms.approvers], quorum: terms.quorum });
    }
  }
  return [...byGroups.values()];
}

/**
 * The smallest of `values`, a missing one counting as `fallback`: a permit that
 * sets no limit of its own gets the server's default, so another permit's larger
 * limit must not replace it.
 */
function smallest(values: readonly (number | undefined)[], fallback: number): number {
  return values.length > 0 ? Math.min(...values.map((value) => value ?? fallback)) : fallback;
}

function ids(policies: readonly LoadedPolicy[]): string[] {
  return policies.map((policy) => policy.id).sort(compare);
}

/** Code-unit order, the same on every machine (localeCompare is not). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
