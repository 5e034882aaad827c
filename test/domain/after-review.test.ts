import { describe, expect, it } from "vitest";
import { awaitsReviewAfter, reviewAfter } from "../../src/domain/after-review.js";
import { issueCredential } from "../../src/domain/credential.js";
import type { Decision } from "../../src/domain/decision.js";
import { WritError } from "../../src/domain/errors.js";
import type { Reviewer } from "../../src/domain/principal.js";
import { type AccessRequest, expireIfDue } from "../../src/domain/request.js";
import { cappedUnder } from "../../src/domain/review.js";
import { REPORT_AGENT as agent, openExport, T0 } from "../support/domain-requests.js";

const carol: Reviewer = { kind: "reviewer", id: "carol", groups: ["security", "data-owners"] };

const breakGlass: Decision = {
  effect: "allow",
  policies: ["customers-break-glass"],
  requirements: [],
  ttlSeconds: 300,
  approvalTimeoutSeconds: 900,
  reasonRequired: true,
  sensitiveFields: [],
  notify: ["security"],
  reviewAfter: ["security"],
};

function approved(decision: Decision = breakGlass, onBehalfOf?: string): AccessRequest {
  return openExport(decision, {
    reason: "incident",
    ...(onBehalfOf !== undefined ? { onBehalfOf } : {}),
  }).request;
}

function issued(request = approved()): AccessRequest {
  return issueCredential({
    request,
    agent,
    credential: { type: "jwt", id: "jti_1", issuedAt: T0 + 1000, expiresAt: T0 + 301_000 },
    now: T0 + 1000,
  }).request;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof WritError) return error.code;
    throw error;
  }
  return undefined;
}

describe("review after the fact", () => {
  it("waits only once a credential was issued, in every status after that, until reviewed", () => {
    const request = approved();
    expect(awaitsReviewAfter(request)).toBe(false);
    expect(
      codeOf(() =>
        reviewAfter({ request, reviewer: carol, verdict: "ok", channel: "api", now: T0 }),
      ),
    ).toBe("not_reviewable_after");
    const live = issued(request);
    expect(awaitsReviewAfter(live)).toBe(true);
    const ended: AccessRequest[] = [
      { ...live, status: "used" },
      { ...live, status: "completed", completedAt: T0 + 2000 },
      { ...live, status: "revoked" },
      expireIfDue(live, T0 + 302_000)?.request as AccessRequest,
    ];
    for (const request of [live, ...ended]) {
      expect(awaitsReviewAfter(request), request.status).toBe(true);
      const { request: done, events } = reviewAfter({
        request,
        reviewer: carol,
        verdict: "ok",
        channel: "cli",
        now: T0 + 400_000,
      });
      expect(done.status).toBe(request.status);
      expect(done.version).toBe(request.version + 1);
      expect(done.reviewedAfter).toEqual({
        reviewerId: "carol",
        verdict: "ok",
        groups: ["security"],
        at: T0 + 400_000,
        channel: "cli",
      });
      expect(awaitsReviewAfter(done)).toBe(false);
      expect(events).toEqual([
        {
          type: "request.reviewed_after",
          requestId: "req_1",
          actor: { kind: "reviewer", id: "carol" },
          time: T0 + 400_000,
          data: {
            reviewer: "carol",
            groups: ["security"],
            verdict: "ok",
            channel: "cli",
            status: request.status,
            credential_id: "jti_1",
          },
        },
      ]);
      // One review closes it.
      expect(
        codeOf(() =>
          reviewAfter({
            request: done,
            reviewer: carol,
            verdict: "concern",
            note: "x",
            channel: "api",
            now: T0,
          }),
        ),
      ).toBe("already_reviewed_after");
    }
  });

  it("keeps rule 2: never the agent, its owner or the person it acts for; only the named groups", () => {
    const request = issued(approved(breakGlass, "erin@example.com"));
    const attempt = (reviewer: Reviewer) =>
      codeOf(() => reviewAfter({ request, reviewer, verdict: "ok", channel: "api", now: T0 }));
    for (const reviewer of [
      { kind: "reviewer", id: "alice", groups: ["security"] },
      { kind: "reviewer", id: "ALICE", groups: ["security"] },
      { kind: "reviewer", id: "report-agent", groups: ["security"] },
      { kind: "reviewer", id: "erin", email: "Erin@example.com", groups: ["security"] },
    ] satisfies Reviewer[]) {
      expect(attempt(reviewer), reviewer.id).toBe("self_approval_forbidden");
    }
    expect(attempt({ kind: "reviewer", id: "bob", groups: ["data-owners"] })).toBe(
      "not_an_approver",
    );
    expect(attempt(carol)).toBeUndefined();
    // No @review_after: nothing to review, whoever asks.
    const { reviewAfter: _, ...plain } = breakGlass;
    const unasked = issued(approved(plain));
    expect(
      codeOf(() =>
        reviewAfter({ request: unasked, reviewer: carol, verdict: "ok", channel: "api", now: T0 }),
      ),
    ).toBe("not_reviewable_after");
  });

  it("needs a readable note for a concern, and refuses hostile notes", () => {
    const request = issued();
    const attempt = (verdict: "ok" | "concern", note?: string) =>
      codeOf(() =>
        reviewAfter({
          request,
          reviewer: carol,
          verdict,
          ...(note !== undefined ? { note } : {}),
          channel: "api",
          now: T0,
        }),
      );
    expect(attempt("concern")).toBe("validation_failed");
    for (const note of ["", "   ", "\u200b\u2060", "a\u202eb", "bell\u0007", "x".repeat(2001)]) {
      expect(attempt("concern", note), JSON.stringify(note)).toBe("validation_failed");
      expect(attempt("ok", note), JSON.stringify(note)).toBe("validation_failed");
    }
    expect(attempt("concern", "no incident on record")).toBeUndefined();
    expect(attempt("ok")).toBeUndefined();
  });

  it("holds for a credential minted after a policy asked for it since the request was decided", () => {
    const { reviewAfter: _, ...plain } = breakGlass;
    const request = approved(plain);
    const minted = cappedUnder(request, { ...plain, reviewAfter: ["security", "audit"] });
    expect(minted.decision.reviewAfter).toEqual(["audit", "security"]);
    // One dropped since still holds.
    expect(cappedUnder(approved(), plain).decision.reviewAfter).toEqual(["security"]);
    const unchanged = approved();
    expect(cappedUnder(unchanged, breakGlass)).toBe(unchanged);
  });

  it("refuses a reviewer who approved the request: someone else looks back", () => {
    const withApproval: AccessRequest = {
      ...issued(),
      reviews: [
        {
          reviewerId: "Carol",
          verdict: "approve",
          groups: ["data-owners"],
          at: T0,
          channel: "api",
        },
      ],
    };
    expect(
      codeOf(() =>
        reviewAfter({
          request: withApproval,
          reviewer: carol,
          verdict: "ok",
          channel: "api",
          now: T0 + 2000,
        }),
      ),
    ).toBe("already_reviewed");
  });
});
