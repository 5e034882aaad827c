import { describe, expect, it } from "vitest";
import {
  assertCollectable,
  consumeCredential,
  issueCredential,
  type TokenProof,
} from "../../src/domain/credential.js";
import type { ApprovalRequirement, Decision } from "../../src/domain/decision.js";
import { isWritError } from "../../src/domain/errors.js";
import type { Agent, ResourceServer, Reviewer } from "../../src/domain/principal.js";
import {
  type AccessRequest,
  cancelRequest,
  expireIfDue,
  type IssuedCredential,
  isLive,
  openRequest,
  type RequestInput,
  type Review,
  type Transition,
} from "../../src/domain/request.js";
import {
  approveRequest,
  approverIds,
  denyRequest,
  unmetRequirements,
} from "../../src/domain/review.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");
const timing = { collectWindowSeconds: 300 };

const agent: Agent = { kind: "agent", id: "report-agent", owner: "alice", attributes: {} };
const reviewer = (id: string, ...groups: string[]): Reviewer => ({ kind: "reviewer", id, groups });
const alice = reviewer("alice", "data-owners");
const bob = reviewer("bob", "data-owners");
const carol = reviewer("carol", "data-owners", "security");
const dave = reviewer("dave", "data-owners");
const erin = reviewer("erin", "finance");
const sam = reviewer("sam", "security");
const server: ResourceServer = {
  kind: "resource_server",
  id: "billing-api",
  audience: "billing-api",
};

function decision(overrides: Partial<Decision> = {}): Decision {
  return {
    effect: "approve",
    policies: ["customers-export"],
    requirements: [{ groups: ["data-owners"], quorum: 2 }],
    ttlSeconds: 300,
    approvalTimeoutSeconds: 900,
    reasonRequired: true,
    sensitiveFields: [],
    ...overrides,
  };
}

const allow = decision({ effect: "allow", requirements: [], reasonRequired: false });
const deny = decision({ effect: "deny", policies: ["no-iam"], requirements: [] });

const input: RequestInput = {
  action: "db:export",
  resource: "db://prod/customers",
  credentialType: "jwt",
  audience: "billing-api",
  reason: "churn analysis",
  context: {},
};

function open(d: Decision = decision(), extra: Partial<RequestInput> = {}, now = T0): Transition {
  return openRequest({
    id: "req_test",
    agent,
    input: { ...input, ...extra },
    decision: d,
    now,
    timing,
  });
}

/** Asserts `fn` throws a WritError with `code`; returns it for further checks. */
function expectCode(fn: () => unknown, code: string) {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isWritError(thrown), `expected a WritError ${code}`).toBe(true);
  if (!isWritError(thrown)) throw thrown;
  expect(thrown.code).toBe(code);
  return thrown;
}

const approve = (request: AccessRequest, who: Reviewer, now = T0 + 1000) =>
  approveRequest({ request, reviewer: who, channel: "api", now, timing });
const denyBy = (request: AccessRequest, who: Reviewer, now = T0 + 1000) =>
  denyRequest({ request, reviewer: who, reason: "no", channel: "slack", now });
/** The digest the test credential was issued with; consumes present it. */
const DIGEST = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
const credential = (now: number, ttlSeconds = 300): IssuedCredential => ({
  type: "jwt",
  id: "jti_test",
  issuedAt: now,
  expiresAt: now + ttlSeconds * 1000,
  digest: DIGEST,
});

/** Approved by `allow`, then issued at `now`. */
function issued(now = T0 + 1000): AccessRequest {
  const { request } = open(allow);
  return issueCredential({ request, agent, credential: credential(now), now }).request;
}

describe("openRequest", () => {
  it("allow → approved, with a collect deadline and created/decided/approved events", () => {
    const { request, events } = open(allow);
    expect(request).toMatchObject({
      id: "req_test",
      version: 1,
      status: "approved",
      agentId: "report-agent",
      owner: "alice",
      createdAt: T0,
      updatedAt: T0,
      expiresAt: T0 + 300_000,
      reviews: [],
    });
    expect(events.map((e) => e.type)).toEqual([
      "request.created",
      "request.decided",
      "request.approved",
    ]);
    expect(events.every((e) => e.requestId === "req_test" && e.time === T0)).toBe(true);
    expect(events[0]?.actor).toEqual({ kind: "agent", id: "report-agent" });
    expect(events[2]?.actor).toEqual({ kind: "system", id: "writ" });
    expect(events[2]?.data).toEqual({ by: "policy", approvers: [] });
  });

  it("approve → pending until the approval timeout, with created/decided events", () => {
    const { request, events } = open(decision({ approvalTimeoutSeconds: 600 }));
    expect(request.status).toBe("pending");
    expect(request.expiresAt).toBe(T0 + 600_000);
    expect(events.map((e) => e.type)).toEqual(["request.created", "request.decided"]);
    expect(events[1]?.data).toEqual({
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
    });
  });

  it("deny → denied at once, recorded with created/decided/denied", () => {
    const { request, events } = open(deny);
    expect(request.status).toBe("denied");
    expect(isLive(request.status)).toBe(false);
    expect(events.map((e) => e.type)).toEqual([
      "request.created",
      "request.decided",
      "request.denied",
    ]);
    expect(events[2]?.data).toEqual({ by: "policy", policies: ["no-iam"] });
  });

  it("refuses a missing or blank reason when the policy requires one", () => {
    const { reason: _reason, ...withoutReason } = input;
    // Blank includes what renders as nothing: zero-width spaces, soft hyphens, joiners.
    for (const reason of [undefined, "", "  \t ", "\u200b", "\u00ad\u2060 \ufeff"]) {
      const err = expectCode(
        () =>
          openRequest({
            id: "req_test",
            agent,
            input: reason === undefined ? withoutReason : { ...withoutReason, reason },
            decision: decision(),
            now: T0,
            timing,
          }),
        "reason_required",
      );
      expect(err.details).toEqual({ policies: ["customers-export"] });
    }
  });

  it("records a deny even without the reason a permit would have wanted", () => {
    const { reason: _reason, ...withoutReason } = input;
    const { request } = openRequest({
      id: "req_test",
      agent,
      input: withoutReason,
      decision: { ...deny, reasonRequired: true },
      now: T0,
      timing,
    });
    expect(request.status).toBe("denied");
  });

  it("grants the asked TTL when below the cap, and caps it otherwise", () => {
    expect(open(allow, { ttlSeconds: 60 }).request.grantedTtlSeconds).toBe(60);
    expect(open(allow, { ttlSeconds: 3600 }).request.grantedTtlSeconds).toBe(300);
    expect(open(allow).request.grantedTtlSeconds).toBe(300);
  });

  it("records who the agent acts for, and no secret", () => {
    const { events } = open(decision(), { onBehalfOf: "bob", ticket: "DATA-1" });
    expect(events[0]?.data).toEqual({
      agent: "report-agent",
      owner: "alice",
      on_behalf_of: "bob",
      action: "db:export",
      resource: "db://prod/customers",
      credential_type: "jwt",
      audience: "billing-api",
      reason: "churn analysis",
      ticket: "DATA-1",
      ttl_seconds: 300,
    });
  });
});

describe("approveRequest", () => {
  it("counts one person once whatever the case or compatibility form of their id", () => {
    // Ids that fold to one person are refused at configuration; this holds even so.
    const first = approve(open().request, bob).request;
    expectCode(() => approve(first, reviewer("Bob", "data-owners")), "already_reviewed");
    expectCode(() => approve(first, reviewer("\uff42ob", "data-owners")), "already_reviewed");
    const stored: AccessRequest = {
      ...first,
      reviews: [...first.reviews, { ...(first.reviews[0] as Review), reviewerId: "BOB" }],
    };
    expect(unmetRequirements(stored)).toEqual([{ groups: ["data-owners"], quorum: 2 }]);
    expect(approverIds(stored)).toEqual(["bob"]);
  });

  it("counts one approval, bumps the version, and stays pending below the quorum", () => {
    const { request } = open();
    const { request: next, events } = approve(request, bob);
    expect(next).toMatchObject({ status: "pending", version: 2, updatedAt: T0 + 1000 });
    expect(next.expiresAt).toBe(request.expiresAt);
    expect(next.reviews).toEqual([
      {
        reviewerId: "bob",
        verdict: "approve",
        groups: ["data-owners"],
        at: T0 + 1000,
        channel: "api",
      },
    ]);
    expect(events.map((e) => e.type)).toEqual(["approval.granted"]);
    expect(events[0]?.data).toEqual({
      reviewer: "bob",
      groups: ["data-owners"],
      channel: "api",
      approvals: 1,
    });
    expect(unmetRequirements(next)).toEqual([{ groups: ["data-owners"], quorum: 2 }]);
    // The input is not mutated.
    expect(request.reviews).toEqual([]);
    expect(request.version).toBe(1);
  });

  it("approves at the quorum, opening the collect window from that moment", () => {
    const first = approve(open().request, bob).request;
    const { request, events } = approve(first, carol, T0 + 5000);
    expect(request).toMatchObject({
      status: "approved",
      version: 3,
      expiresAt: T0 + 5000 + 300_000,
    });
    expect(events.map((e) => e.type)).toEqual(["approval.granted", "request.approved"]);
    expect(events[1]?.data).toEqual({ by: "reviewers", approvers: ["bob", "carol"] });
    expect(unmetRequirements(request)).toEqual([]);
    expect(approverIds(request)).toEqual(["bob", "carol"]);
  });

  it("keeps the comment when one is given", () => {
    const { request, events } = approveRequest({
      request: open().request,
      reviewer: bob,
      comment: "ok for Q3",
      channel: "slack",
      now: T0,
      timing,
    });
    expect(request.reviews[0]?.comment).toBe("ok for Q3");
    expect(events[0]?.data).toMatchObject({ comment: "ok for Q3", channel: "slack" });
  });

  it("refuses the agent's owner, the person it acts for, and the agent's own id", () => {
    const { request } = open(decision(), { onBehalfOf: "bob" });
    expectCode(() => approve(request, alice), "self_approval_forbidden");
    expectCode(() => approve(request, bob), "self_approval_forbidden");
    expectCode(
      () => approve(request, reviewer("report-agent", "data-owners")),
      "self_approval_forbidden",
    );
    expectCode(() => denyBy(request, alice), "self_approval_forbidden");
    expectCode(() => denyBy(request, bob), "self_approval_forbidden");
  });

  it("matches the owner whatever the case or Unicode form of the id", () => {
    const { request } = open(decision(), { onBehalfOf: "Ｂob" });
    expectCode(() => approve({ ...request, owner: "ALICE" }, alice), "self_approval_forbidden");
    expectCode(() => approve(request, bob), "self_approval_forbidden");
  });

  it("knows a reviewer by email too, as the owner or the person the agent acts for", () => {
    const alex: Reviewer = { ...reviewer("alex", "data-owners"), email: "Alex@Example.com" };
    const owned = open(decision()).request;
    expectCode(
      () => approve({ ...owned, owner: "alex@example.com" }, alex),
      "self_approval_forbidden",
    );
    expectCode(
      () => denyBy({ ...owned, owner: "ALEX@example.com" }, alex),
      "self_approval_forbidden",
    );
    const actsFor = open(decision(), { onBehalfOf: "alex@example.com" }).request;
    expectCode(() => approve(actsFor, alex), "self_approval_forbidden");
    // Another person's email is not alex.
    expect(approve({ ...owned, owner: "sam@example.com" }, alex).request.reviews).toHaveLength(1);
  });

  it("refuses a reviewer in none of the named groups", () => {
    const err = expectCode(() => approve(open().request, erin), "not_an_approver");
    expect(err.details).toEqual({ groups: ["data-owners"] });
    expectCode(() => denyBy(open().request, erin), "not_an_approver");
  });

  it("refuses a second approval by the same person", () => {
    const once = approve(open().request, bob).request;
    expectCode(() => approve(once, bob), "already_reviewed");
  });

  it("lets a reviewer who approved deny while the request is pending, keeping both on record", () => {
    const once = approve(open().request, bob).request;
    const { request, events } = denyBy(once, bob);
    expect(request.status).toBe("denied");
    expect(request.reviews.map((r) => [r.reviewerId, r.verdict])).toEqual([
      ["bob", "approve"],
      ["bob", "deny"],
    ]);
    expect(events[0]).toMatchObject({ type: "approval.denied", data: { after_approving: true } });
    // A first review that denies says nothing of approving.
    expect(denyBy(open().request, bob).events[0]?.data).not.toHaveProperty("after_approving");
    // Once the quorum is met the request is approved: revoke, not deny, ends it.
    const approved = approve(once, carol).request;
    expectCode(() => denyBy(approved, bob), "request_not_pending");
  });

  it("refuses reviews once the request is no longer pending", () => {
    const approved = open(allow).request;
    const denied = open(deny).request;
    const cancelled = cancelRequest({ request: open().request, agent, now: T0 }).request;
    for (const request of [approved, denied, cancelled, issued()]) {
      const err = expectCode(() => approve(request, bob), "request_not_pending");
      expect(err.details).toEqual({ status: request.status });
      expectCode(() => denyBy(request, bob), "request_not_pending");
    }
  });

  it("does not count an approval at or after the deadline, even before the sweep", () => {
    const first = approve(open().request, bob).request;
    const deadline = first.expiresAt;
    expect(approve(first, carol, deadline - 1).request.status).toBe("approved");
    for (const late of [deadline, deadline + 60_000]) {
      const err = expectCode(() => approve(first, carol, late), "request_not_pending");
      expect(err.details).toEqual({ status: "expired" });
      expectCode(() => denyBy(first, carol, late), "request_not_pending");
    }
  });

  it("counts distinct people: one person never fills a quorum of two", () => {
    const once = approve(
      open(decision({ requirements: [{ groups: ["data-owners"], quorum: 2 }] })).request,
      carol,
    ).request;
    expect(once.status).toBe("pending");
    expectCode(() => approve(once, carol), "already_reviewed");
    // A review record forged into the list twice still counts once.
    const doubled: AccessRequest = { ...once, reviews: [...once.reviews, ...once.reviews] };
    expect(unmetRequirements(doubled)).toHaveLength(1);
    expect(approverIds(doubled)).toEqual(["carol"]);
  });

  it("counts, per requirement, only approvers from that requirement's groups", () => {
    const requirements: ApprovalRequirement[] = [
      { groups: ["data-owners"], quorum: 2 },
      { groups: ["security"], quorum: 1 },
    ];
    const { request } = open(decision({ requirements }));
    // bob and dave fill data-owners; security still needs someone.
    const two = approve(approve(request, bob).request, dave).request;
    expect(two.status).toBe("pending");
    expect(unmetRequirements(two)).toEqual([{ groups: ["security"], quorum: 1 }]);
    // sam (security only) completes it: both requirements hold (AND).
    const done = approve(two, sam);
    expect(done.request.status).toBe("approved");
    expect(done.events.map((e) => e.type)).toEqual(["approval.granted", "request.approved"]);
  });

  it("with two requirements, security alone is not enough", () => {
    const requirements: ApprovalRequirement[] = [
      { groups: ["data-owners"], quorum: 2 },
      { groups: ["security"], quorum: 1 },
    ];
    const { request } = open(decision({ requirements }));
    const afterSam = approve(request, sam).request;
    expect(unmetRequirements(afterSam)).toEqual([{ groups: ["data-owners"], quorum: 2 }]);
    // carol is in both groups: she counts toward each requirement she belongs to.
    const afterCarol = approve(afterSam, carol).request;
    expect(unmetRequirements(afterCarol)).toEqual([{ groups: ["data-owners"], quorum: 2 }]);
    expect(approve(afterCarol, bob).request.status).toBe("approved");
  });

  it("any one group of a requirement counts toward it", () => {
    const requirements = [{ groups: ["data-owners", "finance"], quorum: 2 }];
    const { request } = open(decision({ requirements }));
    const done = approve(approve(request, erin).request, bob).request;
    expect(done.status).toBe("approved");
    expect(done.reviews.map((r) => r.groups)).toEqual([["finance"], ["data-owners"]]);
  });
});

describe("denyRequest", () => {
  it("refuses a blank or invisible reason, in every channel", () => {
    const { request } = open();
    for (const reason of ["", "   ", "\u200b\u200c"]) {
      expectCode(
        () => denyRequest({ request, reviewer: bob, reason, channel: "console", now: T0 + 1 }),
        "validation_failed",
      );
    }
  });

  it("one deny ends the request, even after approvals", () => {
    const once = approve(open().request, bob).request;
    const { request, events } = denyBy(once, carol);
    expect(request).toMatchObject({ status: "denied", version: 3 });
    expect(request.reviews.at(-1)).toMatchObject({
      reviewerId: "carol",
      verdict: "deny",
      comment: "no",
      channel: "slack",
    });
    expect(events.map((e) => e.type)).toEqual(["approval.denied", "request.denied"]);
    expect(events[1]?.data).toEqual({ by: "reviewer", reviewer: "carol", reason: "no" });
    expect(events[1]?.actor).toEqual({ kind: "reviewer", id: "carol" });
  });
});

describe("cancelRequest", () => {
  it("cancels a pending or an approved request", () => {
    for (const request of [open().request, open(allow).request]) {
      const { request: next, events } = cancelRequest({ request, agent, now: T0 + 1 });
      expect(next).toMatchObject({ status: "cancelled", version: 2 });
      expect(events.map((e) => e.type)).toEqual(["request.cancelled"]);
      expect(events[0]?.data).toEqual({ previous_status: request.status });
    }
  });

  it("refuses anything else", () => {
    const used = consumeCredential({
      request: issued(),
      server,
      credentialId: "jti_test",
      proof: { digest: DIGEST },
      now: T0 + 2000,
    }).request;
    for (const request of [open(deny).request, issued(), used]) {
      expectCode(() => cancelRequest({ request, agent, now: T0 + 3000 }), "request_not_pending");
    }
  });
});

describe("expireIfDue", () => {
  it("does nothing before the deadline", () => {
    const { request } = open();
    expect(expireIfDue(request, request.expiresAt - 1)).toBeUndefined();
  });

  it("expires a pending or approved request at its deadline", () => {
    for (const request of [open().request, open(allow).request]) {
      const expiry = expireIfDue(request, request.expiresAt);
      expect(expiry?.request).toMatchObject({ status: "expired", version: 2 });
      expect(expiry?.events.map((e) => e.type)).toEqual(["request.expired"]);
      expect(expiry?.events[0]?.data).toEqual({
        previous_status: request.status,
        deadline: new Date(request.expiresAt).toISOString(),
      });
      expect(expiry?.events[0]?.actor).toEqual({ kind: "system", id: "writ" });
    }
  });

  it("records an issued credential's end as credential.expired", () => {
    const request = issued();
    const expiry = expireIfDue(request, request.expiresAt + 1);
    expect(expiry?.events.map((e) => e.type)).toEqual(["credential.expired"]);
  });

  it("leaves settled requests alone", () => {
    const used = consumeCredential({
      request: issued(),
      server,
      credentialId: "jti_test",
      proof: { digest: DIGEST },
      now: T0 + 2000,
    }).request;
    for (const request of [open(deny).request, used]) {
      expect(expireIfDue(request, T0 + 86_400_000)).toBeUndefined();
    }
  });
});

describe("assertCollectable and issueCredential", () => {
  it("names why a credential cannot be collected", () => {
    const approved = open(allow).request;
    expect(() => assertCollectable(approved, T0)).not.toThrow();
    expectCode(() => assertCollectable(approved, approved.expiresAt), "request_expired");
    expectCode(() => assertCollectable(open().request, T0), "approval_pending");
    expectCode(() => assertCollectable(open(deny).request, T0), "request_denied");
    const cancelled = cancelRequest({ request: approved, agent, now: T0 }).request;
    expectCode(() => assertCollectable(cancelled, T0), "request_cancelled");
    const expired = expireIfDue(approved, approved.expiresAt)?.request as AccessRequest;
    expectCode(() => assertCollectable(expired, approved.expiresAt), "request_expired");
    expectCode(() => assertCollectable(issued(), T0 + 2000), "credential_already_issued");
  });

  it("issues once: approved → issued, the deadline becomes the credential's expiry", () => {
    const { request } = open(allow);
    const { request: next, events } = issueCredential({
      request,
      agent,
      credential: credential(T0 + 1000, 120),
      now: T0 + 1000,
    });
    expect(next).toMatchObject({ status: "issued", version: 2, expiresAt: T0 + 1000 + 120_000 });
    expect(next.credential).toEqual(credential(T0 + 1000, 120));
    expect(events.map((e) => e.type)).toEqual(["credential.issued"]);
    expect(events[0]?.data).toEqual({
      credential_type: "jwt",
      credential_id: "jti_test",
      expires_at: new Date(T0 + 1000 + 120_000).toISOString(),
      ttl_seconds: request.grantedTtlSeconds,
      action: "db:export",
      resource: "db://prod/customers",
      audience: "billing-api",
    });
    expectCode(
      () => issueCredential({ request: next, agent, credential: credential(T0), now: T0 + 2000 }),
      "credential_already_issued",
    );
  });
});

describe("consumeCredential", () => {
  /** The test credential presented by billing-api with its digest, unless told otherwise. */
  const consume = (
    request: AccessRequest,
    options: { proof?: TokenProof; credentialId?: string; now?: number; by?: ResourceServer } = {},
  ) =>
    consumeCredential({
      request,
      server: options.by ?? server,
      credentialId: options.credentialId ?? "jti_test",
      proof: options.proof ?? { digest: DIGEST },
      now: options.now ?? T0,
    });

  it("first use: issued → used, token.used", () => {
    const request = issued();
    const { request: next, events } = consume(request, { now: T0 + 2000 });
    expect(next).toMatchObject({ status: "used", version: request.version + 1 });
    expect(events.map((e) => e.type)).toEqual(["token.used"]);
    expect(events[0]?.data).toEqual({ credential_id: "jti_test", resource_server: "billing-api" });
  });

  it("a replay keeps the state and version, and only records token.replay_blocked", () => {
    const used = consume(issued(), { now: T0 + 2000 }).request;
    const replay = consume(used, { now: T0 + 3000 });
    expect(replay.request).toBe(used);
    expect(replay.events.map((e) => e.type)).toEqual(["token.replay_blocked"]);
  });

  it("refuses another credential id, an expired credential, and an unissued request", () => {
    const request = issued();
    expectCode(
      () => consume(request, { credentialId: "jti_other", now: T0 + 2000 }),
      "token_invalid",
    );
    expectCode(() => consume(request, { now: request.expiresAt }), "token_invalid");
    expectCode(() => consume(open(allow).request), "token_invalid");
  });

  it("records the genuine token presented after its credential ended, changing nothing", () => {
    const request = issued();
    const expired = expireIfDue(request, request.expiresAt)?.request as AccessRequest;
    const rejected = consume(expired, { now: request.expiresAt + 1000 });
    expect(rejected.request).toBe(expired);
    expect(rejected.events).toMatchObject([
      {
        type: "token.rejected",
        data: {
          credential_id: request.credential?.id,
          resource_server: server.id,
          status: "expired",
        },
      },
    ]);
    // A token that is not the one issued is refused as before, recording nothing.
    expectCode(
      () => consume(expired, { credentialId: "jti_other", now: request.expiresAt + 1000 }),
      "token_invalid",
    );
  });

  it("refuses any token but the one issued, by its digest, or by its signature if none was recorded", () => {
    const request = issued();
    expectCode(
      () => consume(request, { proof: { digest: `${DIGEST.slice(0, -1)}A` } }),
      "token_invalid",
    );
    expectCode(() => consume(request, { proof: { digest: "" } }), "token_invalid");
    // Recorded without a digest (an older writ issued it): only a verified signature will do.
    const { digest: _, ...undigested } = request.credential as IssuedCredential;
    const legacy = { ...request, credential: undigested };
    expectCode(() => consume(legacy), "token_invalid");
    const used = consume(legacy, { proof: { signatureVerified: true }, now: T0 + 2000 });
    expect(used.request.status).toBe("used");
    // A recorded digest is never waived for a signature.
    expectCode(() => consume(request, { proof: { signatureVerified: true } }), "token_invalid");
  });

  it("refuses a genuine token presented by another audience's server, recording nothing", () => {
    const ledger = { ...server, id: "ledger-api", audience: "ledger-api" };
    expectCode(() => consume(issued(), { by: ledger, now: T0 + 2000 }), "audience_mismatch");
  });
});
