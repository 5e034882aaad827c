/**
 * One approval condition: `quorum` distinct people, each a member of at least one
 * of `groups`. A request needing approval is approved when every requirement holds.
 */
export interface ApprovalRequirement {
  readonly groups: readonly string[];
  readonly quorum: number;
}

/** What the policy said about a request. */
export interface Decision {
  readonly effect: "allow" | "approve" | "deny";
  /** Ids of the policies that determined the decision (permits, or the forbids). */
  readonly policies: readonly string[];
  /** Empty unless `effect` is `approve`. */
  readonly requirements: readonly ApprovalRequirement[];
  /** Upper bound on the credential's lifetime. */
  readonly ttlSeconds: number;
  /** How long the request may wait for approval before it expires. */
  readonly approvalTimeoutSeconds: number;
  readonly reasonRequired: boolean;
  /** Context field names that notifications mask until a reviewer reveals them. */
  readonly sensitiveFields: readonly string[];
  /**
   * Networks an AWS credential may be used from (`aws:SourceIp`): one list per
   * determining permit with `@aws_source_ip`, and every list must hold. Absent
   * when no permit restricts it.
   */
  readonly awsSourceIps?: readonly (readonly string[])[];
  /**
   * Whom to notify if the request is still pending `afterSeconds` after it was
   * created, always before its approval timeout. It adds people to tell, never
   * people who may approve: only `requirements` say who counts. Absent when no
   * determining permit escalates.
   */
  readonly escalation?: Escalation;
  /**
   * Groups told once the request is decided (`@notify`): a heads-up, not a
   * prompt, so it never changes who may approve. Absent when no determining
   * permit names any.
   */
  readonly notify?: readonly string[];
  /**
   * Groups one of whose members must review the request after the fact, once
   * a credential is issued for it (`@review_after`). Absent when no
   * determining permit names any.
   */
  readonly reviewAfter?: readonly string[];
}

/** Escalation of a pending request: when (seconds after creation) and to which groups. */
export interface Escalation {
  readonly afterSeconds: number;
  readonly groups: readonly string[];
}

/** Every group named by any requirement, in order, without repeats. */
export function approverGroups(decision: Decision): string[] {
  return [...new Set(decision.requirements.flatMap((r) => r.groups))];
}

/** The largest quorum any requirement asks for (0 when nothing needs approval). */
export function requiredQuorum(decision: Decision): number {
  return decision.requirements.reduce((max, r) => Math.max(max, r.quorum), 0);
}

/**
 * A decision's escalation as events and views show it, `{}` when it has none:
 * one spelling for the audit trail and the API.
 */
export function escalationTerms(decision: Decision): {
  escalation?: { after_seconds: number; groups: string[] };
} {
  const { escalation } = decision;
  if (escalation === undefined) return {};
  return {
    escalation: { after_seconds: escalation.afterSeconds, groups: [...escalation.groups] },
  };
}
