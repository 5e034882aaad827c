import { describe, expect, it } from "vitest";
import type { Decision } from "../../src/domain/decision.js";
import { escalateIfDue, escalationDueAt } from "../../src/domain/escalation.js";
import type { Reviewer } from "../../src/domain/principal.js";
import { type AccessRequest, cancelRequest } from "../../src/domain/request.js";
import { approveRequest, unmetRequirements } from "../../src/domain/review.js";
import {
  REPORT_AGENT as agent,
  openExport,
  T0,
  TIMING as timing,
} from "../support/domain-requests.js";

const bob: Reviewer = { kind: "reviewer", id: "bob", groups: ["data-owners"] };
const oncall: Reviewer = { kind: "reviewer", id: "olga", groups: ["security-oncall"] };

const decision: Decision = {
  effect: "approve",
  policies: ["customers-export"],
  requirements: [{ groups: ["data-owners"], quorum: 2 }],
  ttlSeconds: 300,
  approvalTimeoutSeconds: 900,
  reasonRequired: false,
  sensitiveFields: [],
  escalation: { afterSeconds: 600, groups: ["security-oncall"] },
};

function pending(overrides: Partial<Decision> = {}, withEscalation = true): AccessRequest {
  const { escalation: _, ...plain } = decision;
  return openExport({ ...(withEscalation ? decision : plain), ...overrides }).request;
}

describe("escalation of a pending request", () => {
  it("is recorded in request.decided, so the trail shows its terms even if it never fires", () => {
    const { events } = openExport(decision);
    expect(events.find((e) => e.type === "request.decided")?.data).toEqual({
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
      escalation: { after_seconds: 600, groups: ["security-oncall"] },
    });
  });

  it("is due at createdAt + escalate_after, and not before", () => {
    const request = pending();
    expect(escalationDueAt(request)).toBe(T0 + 600_000);
    expect(escalateIfDue(request, T0 + 599_999)).toBeUndefined();
    const due = escalateIfDue(request, T0 + 601_000);
    expect(due?.request).toMatchObject({
      status: "pending",
      escalatedAt: T0 + 601_000,
      version: request.version + 1,
    });
    expect(due?.events).toEqual([
      {
        type: "request.escalated",
        requestId: request.id,
        actor: { kind: "system", id: "writ" },
        time: T0 + 601_000,
        data: {
          groups: ["security-oncall"],
          after_seconds: 600,
          waited_seconds: 601,
          approvals: 0,
        },
      },
    ]);
  });

  it("happens once: an escalated request is never due again", () => {
    const escalated = escalateIfDue(pending(), T0 + 600_000)?.request as AccessRequest;
    expect(escalationDueAt(escalated)).toBeUndefined();
    expect(escalateIfDue(escalated, T0 + 700_000)).toBeUndefined();
  });

  it("happens only while pending and before the approval deadline", () => {
    const cancelled = cancelRequest({ request: pending(), agent, now: T0 + 1000 }).request;
    expect(escalationDueAt(cancelled)).toBeUndefined();
    expect(escalateIfDue(cancelled, T0 + 600_000)).toBeUndefined();
    // At its deadline the request expires instead.
    expect(escalateIfDue(pending(), T0 + 900_000)).toBeUndefined();
    const without = pending({}, false);
    expect(escalationDueAt(without)).toBeUndefined();
    expect(escalateIfDue(without, T0 + 600_000)).toBeUndefined();
  });

  it("keeps approvals and never changes who may approve", () => {
    const halfway = approveRequest({
      request: pending(),
      reviewer: bob,
      channel: "api",
      now: T0 + 1000,
      timing,
    }).request;
    const escalated = escalateIfDue(halfway, T0 + 600_000);
    expect(escalated?.events[0]?.data.approvals).toBe(1);
    expect(escalated?.request.reviews).toEqual(halfway.reviews);
    expect(escalated?.request.decision.requirements).toEqual(decision.requirements);
    expect(unmetRequirements(escalated?.request as AccessRequest)).toEqual(
      unmetRequirements(halfway),
    );
    // A member of the escalation group only is still no approver.
    expect(() =>
      approveRequest({
        request: escalated?.request as AccessRequest,
        reviewer: oncall,
        channel: "api",
        now: T0 + 600_001,
        timing,
      }),
    ).toThrow(expect.objectContaining({ code: "not_an_approver" }));
  });
});
