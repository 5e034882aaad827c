import type { Decision } from "./decision.js";
import { WritError } from "./errors.js";
import type { DomainEvent } from "./events.js";
import { type Agent, actorOf, type Reviewer, SYSTEM_ACTOR } from "./principal.js";
import {
  type AccessRequest,
  advance,
  type Review,
  type ReviewChannel,
  requestEvent,
  type Timing,
  type Transition,
} from "./request.js";
import { hasVisibleText } from "./text.js";

/**
 * The form of a person id that two ids naming one person share: case and
 * Unicode compatibility forms folded. An owner taken from an identity
 * provider's claim ("AliceSmith") must still match the reviewer configured as
 * "alicesmith", and two reviews under "bob" and "Bob" are one person's.
 */
export function personKey(id: string): string {
  return id.normalize("NFKC").toLowerCase();
}

/** Whether two person ids name the same person (see {@link personKey}). */
export function samePerson(a: string, b: string): boolean {
  return personKey(a) === personKey(b);
}

/** The requirements still unmet, given the approvals so far: each counts distinct people. */
export function unmetRequirements(request: AccessRequest) {
  const approvals = request.reviews.filter((r) => r.verdict === "approve");
  return request.decision.requirements.filter((requirement) => {
    const counted = new Set(
      approvals
        .filter((a) => a.groups.some((g) => requirement.groups.includes(g)))
        .map((a) => personKey(a.reviewerId)),
    );
    return counted.size < requirement.quorum;
  });
}

/** What a request lacks under the policies in force now: see {@link shortfallUnder}. */
export type Shortfall = "denied" | "reason" | "approval";

/**
 * What the policies in force now ask of `request` that it does not have, if
 * anything: `denied` when they deny it; `reason` when they require a reason it
 * did not give; `approval` when they ask for approvals it lacks (a policy that
 * allowed it at once now names approvers, or asks more of them). Reviews count
 * under the groups recorded with them, so approvals under groups the new
 * policies name but the old ones did not are not counted.
 */
export function shortfallUnder(request: AccessRequest, current: Decision): Shortfall | undefined {
  if (current.effect === "deny") return "denied";
  if (current.reasonRequired && !hasVisibleText(request.reason)) return "reason";
  if (
    current.effect === "approve" &&
    unmetRequirements({ ...request, decision: current }).length > 0
  ) {
    return "approval";
  }
  return undefined;
}

/**
 * The request narrowed by the policies in force now, for minting: a TTL lowered
 * since the request was decided (a team tightening it during an incident) holds
 * for every credential minted after the change, and source-IP limits added
 * since hold alongside those it was decided under, as does a review after the
 * fact (`@review_after`) asked for since. Nothing the policies relaxed since
 * widens what was granted: a TTL raised never lengthens it, and limits dropped
 * still hold.
 */
export function cappedUnder(request: AccessRequest, current: Decision): AccessRequest {
  const ttlSeconds = Math.min(request.grantedTtlSeconds, current.ttlSeconds);
  const sourceIps = withAddedLists(request.decision.awsSourceIps, current.awsSourceIps);
  const reviewAfter = withAddedGroups(request.decision.reviewAfter, current.reviewAfter);
  if (
    ttlSeconds === request.grantedTtlSeconds &&
    sourceIps === request.decision.awsSourceIps &&
    reviewAfter === request.decision.reviewAfter
  ) {
    return request;
  }
  return {
    ...request,
    grantedTtlSeconds: ttlSeconds,
    decision: {
      ...request.decision,
      ...(sourceIps !== undefined ? { awsSourceIps: sourceIps } : {}),
      ...(reviewAfter !== undefined ? { reviewAfter } : {}),
    },
  };
}

/**
 * `granted` with the groups of `current` it lacks: a review after the fact
 * that the policies in force now ask for holds for a credential minted now,
 * and one they dropped still holds. `granted` itself when it lacks none.
 */
function withAddedGroups(
  granted: readonly string[] | undefined,
  current: readonly string[] | undefined,
): readonly string[] | undefined {
  const added = (current ?? []).filter((group) => !(granted ?? []).includes(group));
  return added.length === 0 ? granted : [...(granted ?? []), ...added].sort();
}

/** `granted`, with the lists of `current` it lacks appended; `granted` itself when it lacks none. */
function withAddedLists(
  granted: readonly (readonly string[])[] | undefined,
  current: readonly (readonly string[])[] | undefined,
): readonly (readonly string[])[] | undefined {
  // Most policies limit no networks: nothing to compare, on every collect.
  if (current === undefined || current.length === 0) return granted;
  const key = (list: readonly string[]) => JSON.stringify([...list].sort());
  const held = new Set((granted ?? []).map(key));
  const added = (current ?? []).filter((list) => !held.has(key(list)));
  return added.length === 0 ? granted : [...(granted ?? []), ...added];
}

/**
 * Rule 2: whether `reviewer` is the request's agent, its owner or the person it
 * acts for, by id or by the reviewer's email (an owner mapped from an email
 * claim, or an `on_behalf_of` written as an email, names the same person).
 */
export function isOwnRequest(request: AccessRequest, reviewer: Reviewer): boolean {
  const names = reviewer.email === undefined ? [reviewer.id] : [reviewer.id, reviewer.email];
  const people = [request.agentId, request.owner, request.onBehalfOf];
  return names.some((name) =>
    people.some((person) => person !== undefined && samePerson(name, person)),
  );
}

/**
 * Whether `agent` may name `person` as its `on_behalf_of`: always when no
 * `acts_for` is configured for it, else only a person on that list. Naming
 * someone keeps them from reviewing (rule 2), so an agent left free to name
 * anyone could name a group's one strict reviewer and so choose who approves.
 * Throws `on_behalf_of_not_allowed` otherwise.
 */
export function assertMayActFor(agent: Agent, person: string | undefined): void {
  if (person === undefined || agent.actsFor === undefined) return;
  if (agent.actsFor.some((allowed) => samePerson(allowed, person))) return;
  throw new WritError(
    "on_behalf_of_not_allowed",
    `This agent may not act on behalf of "${person}": its configured acts_for does not name them.`,
  );
}

/** Distinct people who have approved, each under the id of their first approval. */
export function approverIds(request: AccessRequest): string[] {
  const people = new Map<string, string>();
  for (const review of request.reviews) {
    const key = personKey(review.reviewerId);
    if (review.verdict === "approve" && !people.has(key)) people.set(key, review.reviewerId);
  }
  return [...people.values()];
}

/**
 * The reviewer's groups that the policy names, if `reviewer` may act on `request`
 * now: it is pending and before its deadline, and the reviewer is neither the
 * agent, its owner nor its `on_behalf_of` person. Throws the coded reason otherwise.
 * Every channel's checks (review, reveal) go through here.
 */
export function assertEligibleReviewer(
  request: AccessRequest,
  reviewer: Reviewer,
  now: number,
): string[] {
  if (request.status !== "pending") {
    throw new WritError("request_not_pending", `The request is ${request.status}, not pending.`, {
      status: request.status,
    });
  }
  if (now >= request.expiresAt) {
    // An approval that arrives after the deadline never counts, even before the sweep.
    throw new WritError("request_not_pending", "The request has expired.", { status: "expired" });
  }
  if (isOwnRequest(request, reviewer)) {
    throw new WritError(
      "self_approval_forbidden",
      "You own this agent or it acts on your behalf, so you cannot review its request.",
    );
  }
  const named = new Set(request.decision.requirements.flatMap((r) => r.groups));
  const groups = reviewer.groups.filter((g) => named.has(g));
  if (groups.length === 0) {
    throw new WritError("not_an_approver", "You are not in a group that may review this request.", {
      groups: [...named],
    });
  }
  return groups;
}

function assertReviewable(request: AccessRequest, reviewer: Reviewer, now: number): string[] {
  const groups = assertEligibleReviewer(request, reviewer, now);
  if (request.reviews.some((r) => samePerson(r.reviewerId, reviewer.id))) {
    throw new WritError("already_reviewed", "You have already reviewed this request.");
  }
  return groups;
}

export function approveRequest(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  comment?: string;
  channel: ReviewChannel;
  /** The reviewer's account in the channel (a Slack user id), recorded with the review. */
  channelUserId?: string;
  now: number;
  timing: Timing;
}): Transition {
  const { request, reviewer, comment, channel, channelUserId, now, timing } = args;
  const groups = assertReviewable(request, reviewer, now);
  const review: Review = {
    reviewerId: reviewer.id,
    verdict: "approve",
    groups,
    ...(comment ? { comment } : {}),
    at: now,
    channel,
  };
  const reviewed = advance(request, { reviews: [...request.reviews, review] }, now);
  const approved = unmetRequirements(reviewed).length === 0;
  const approvers = approverIds(reviewed);
  const actor = actorOf(reviewer);
  const events: DomainEvent[] = [
    requestEvent(request, "approval.granted", actor, now, {
      reviewer: reviewer.id,
      groups,
      channel,
      ...(channelUserId ? { channel_user_id: channelUserId } : {}),
      ...(comment ? { comment } : {}),
      approvals: approvers.length,
    }),
  ];
  if (!approved) return { request: reviewed, events };
  events.push(
    requestEvent(request, "request.approved", SYSTEM_ACTOR, now, { by: "reviewers", approvers }),
  );
  return {
    request: {
      ...reviewed,
      status: "approved",
      expiresAt: now + timing.collectWindowSeconds * 1000,
    },
    events,
  };
}

export function denyRequest(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  reason: string;
  channel: ReviewChannel;
  /** The reviewer's account in the channel (a Slack user id), recorded with the review. */
  channelUserId?: string;
  now: number;
}): Transition {
  const { request, reviewer, reason, channel, channelUserId, now } = args;
  // A reviewer who approved may still deny while the request is pending: a
  // change of mind (or something seen since) must be able to stop it before
  // the quorum is reached, as any eligible reviewer's deny does. Their
  // approval stays on record beside the deny.
  const groups = assertEligibleReviewer(request, reviewer, now);
  const approvedBefore = request.reviews.some((r) => samePerson(r.reviewerId, reviewer.id));
  // Every channel asks for a reason; one made of blanks says nothing to the agent or an auditor.
  if (!hasVisibleText(reason)) throw new WritError("validation_failed", "Give a reason to deny.");
  const review: Review = {
    reviewerId: reviewer.id,
    verdict: "deny",
    groups,
    comment: reason,
    at: now,
    channel,
  };
  const actor = actorOf(reviewer);
  return {
    request: advance(request, { status: "denied", reviews: [...request.reviews, review] }, now),
    events: [
      requestEvent(request, "approval.denied", actor, now, {
        reviewer: reviewer.id,
        groups,
        channel,
        ...(channelUserId ? { channel_user_id: channelUserId } : {}),
        reason,
        ...(approvedBefore ? { after_approving: true } : {}),
      }),
      // The outcome carries its reason too: a rule that watches outcomes alone
      // (request.denied) sees why, without joining it to approval.denied.
      requestEvent(request, "request.denied", actor, now, {
        by: "reviewer",
        reviewer: reviewer.id,
        reason,
      }),
    ],
  };
}
