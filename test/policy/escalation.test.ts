import { afterEach, describe, expect, it } from "vitest";
import { readPolicyTerms } from "../../src/policy/annotations.js";
import { createCedarPolicyEngine } from "../../src/policy/cedar-engine.js";
import { loadPolicySet, PolicyLoadError } from "../../src/policy/policy-set.js";
import { DEFAULTS, query, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function dirOf(files: Record<string, string>): Promise<string> {
  const temp = await tempPolicies(files);
  cleanups.push(temp.remove);
  return temp.dir;
}

function problemsOf(annotations: Record<string, string | null>, effect: "permit" | "forbid") {
  const result = readPolicyTerms(effect, annotations);
  return result.ok ? [] : result.problems;
}

describe("@escalate_after and @escalate_to", () => {
  it("read as an escalation of a permit with approvers", () => {
    const result = readPolicyTerms("permit", {
      approvers: "data-owners",
      approval_timeout: "900",
      escalate_after: "600",
      escalate_to: "security-oncall, sre ,security-oncall",
    });
    expect(result).toMatchObject({
      ok: true,
      terms: {
        approvers: ["data-owners"],
        escalation: { afterSeconds: 600, groups: ["security-oncall", "sre"] },
      },
    });
    const plain = readPolicyTerms("permit", { approvers: "data-owners" });
    expect(plain.ok && plain.terms.escalation).toBeUndefined();
  });

  it("refuse one without the other, bad values, and a time at or past the approval timeout", () => {
    const base = { approvers: "data-owners" };
    expect(problemsOf({ ...base, escalate_after: "600" }, "permit")).toEqual([
      "@escalate_after needs @escalate_to naming the groups to notify",
    ]);
    expect(problemsOf({ ...base, escalate_to: "sec" }, "permit")).toEqual([
      "@escalate_to needs @escalate_after saying when, in seconds",
    ]);
    for (const value of [null, "", "0", "-5", "5m", "1e3", "600.0", " 600"]) {
      expect(problemsOf({ ...base, escalate_after: value, escalate_to: "sec" }, "permit")).toEqual([
        `@escalate_after must be a positive integer, got ${value === null ? "no value" : JSON.stringify(value)}`,
      ]);
    }
    for (const value of [null, "", "a b", "sec,", 'x"y']) {
      expect(
        problemsOf({ ...base, escalate_after: "60", escalate_to: value }, "permit"),
      ).toHaveLength(1);
    }
    for (const after of ["900", "901"]) {
      expect(
        problemsOf(
          { ...base, approval_timeout: "900", escalate_after: after, escalate_to: "sec" },
          "permit",
        ),
      ).toEqual([
        `@escalate_after must be less than @approval_timeout ("900"), got "${after}": the request would expire first`,
      ]);
    }
  });

  it("refuse a permit without approvers and any forbid", () => {
    const escalation = { escalate_after: "60", escalate_to: "sec" };
    expect(problemsOf(escalation, "permit")).toEqual([
      "@escalate_after and @escalate_to need @approvers: without them nothing waits for approval",
    ]);
    const forbid = problemsOf(escalation, "forbid");
    expect(forbid).toContain(
      "@escalate_after has no meaning on a forbid policy: a forbid always denies",
    );
    expect(forbid).toContain(
      "@escalate_to has no meaning on a forbid policy: a forbid always denies",
    );
  });

  it("fail loading with the file and the policy named", async () => {
    const dir = await dirOf({
      "data.cedar": `@id("open-export") @escalate_after("600") @escalate_to("security-oncall")
permit (principal, action == Action::"db:export", resource);

@id("no-drop") @escalate_after("600") @escalate_to("security-oncall")
forbid (principal, action == Action::"db:drop", resource);`,
    });
    const error = await loadPolicySet(dir).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(PolicyLoadError);
    const problems = (error as PolicyLoadError).problems;
    expect(problems.map((p) => p.policyId)).toContain("open-export");
    expect(problems.map((p) => p.policyId)).toContain("no-drop");
    expect(problems.every((p) => p.file?.endsWith("data.cedar"))).toBe(true);
    expect((error as Error).message).toMatch(
      /data\.cedar: policy "open-export": @escalate_after and @escalate_to need @approvers/,
    );
    expect((error as Error).message).toMatch(
      /data\.cedar: policy "no-drop": @escalate_after has no meaning on a forbid policy/,
    );
  });
});

describe("escalation in a decision", () => {
  async function engineFor(files: Record<string, string>) {
    const engine = await createCedarPolicyEngine({ dir: await dirOf(files), defaults: DEFAULTS });
    cleanups.push(async () => engine.close());
    return engine;
  }

  it("takes the earliest time and every group of the determining permits", async () => {
    const engine = await engineFor({
      "a.cedar": `
        @id("owners") @approvers("data-owners") @escalate_after("900") @escalate_to("sre,data-leads")
        permit (principal, action, resource);
        @id("security") @approvers("security") @escalate_after("300") @escalate_to("security-oncall")
        permit (principal, action, resource);
        @id("plain") @approvers("ops")
        permit (principal, action, resource);
        @id("other-action") @approvers("ops") @escalate_after("60") @escalate_to("nobody")
        permit (principal, action == Action::"other", resource);`,
    });
    const decision = engine.decide(query("x", "r"));
    expect(decision.effect).toBe("approve");
    expect(decision.escalation).toEqual({
      afterSeconds: 300,
      groups: ["data-leads", "security-oncall", "sre"],
    });
    // Escalation adds people to tell, never people who may approve.
    expect(decision.requirements.flatMap((r) => r.groups).sort()).toEqual([
      "data-owners",
      "ops",
      "security",
    ]);
  });

  it("has none when no determining permit escalates, or when it would come after the request expired", async () => {
    const engine = await engineFor({
      "a.cedar": `
        @id("plain") @approvers("ops")
        permit (principal, action == Action::"x", resource);
        @id("late") @approvers("ops") @escalate_after("600") @escalate_to("sec")
        permit (principal, action == Action::"y", resource);
        @id("quick") @approvers("ops") @approval_timeout("300")
        permit (principal, action == Action::"y", resource);`,
    });
    expect(engine.decide(query("x", "r")).escalation).toBeUndefined();
    // "quick" expires the request at 300 s: an escalation at 600 s could never happen.
    const y = engine.decide(query("y", "r"));
    expect(y.approvalTimeoutSeconds).toBe(300);
    expect(y.escalation).toBeUndefined();
  });

  it("refuses loading an escalation at or past the default approval timeout of a permit without its own", async () => {
    const files = (after: string) => ({
      "late.cedar": `@id("beyond-default") @approvers("ops") @escalate_after("${after}") @escalate_to("sec")
permit (principal, action, resource);`,
    });
    await expect(engineFor(files(String(DEFAULTS.approvalTimeoutSeconds)))).rejects.toThrow(
      /late\.cedar: policy "beyond-default": @escalate_after must be less than the default approval timeout \(3600 s\)/,
    );
    const engine = await engineFor(files(String(DEFAULTS.approvalTimeoutSeconds - 1)));
    expect(engine.decide(query("x", "r")).escalation?.afterSeconds).toBe(3599);
  });
});
