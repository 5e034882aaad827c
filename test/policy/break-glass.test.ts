import { afterEach, describe, expect, it } from "vitest";
import type { JsonObject } from "../../src/domain/json.js";
import { readPolicyTerms } from "../../src/policy/annotations.js";
import { createCedarPolicyEngine } from "../../src/policy/cedar-engine.js";
import { policyQueryOf } from "../../src/service/policy-query.js";
import { BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { agent, DEFAULTS, query, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function engineFor(files: Record<string, string>) {
  const temp = await tempPolicies(files);
  cleanups.push(temp.remove);
  const engine = await createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS });
  cleanups.push(async () => engine.close());
  return engine;
}

function problemsOf(annotations: Record<string, string | null>, effect: "permit" | "forbid") {
  const result = readPolicyTerms(effect, annotations);
  return result.ok ? [] : result.problems;
}

describe("@notify and @review_after", () => {
  it("read as group lists, with or without @approvers", () => {
    expect(
      readPolicyTerms("permit", { notify: "security, sre ,security", review_after: "security" }),
    ).toMatchObject({
      ok: true,
      terms: { approvers: [], notify: ["security", "sre"], reviewAfter: ["security"] },
    });
    expect(
      readPolicyTerms("permit", { approvers: "data-owners", review_after: "audit" }),
    ).toMatchObject({ ok: true, terms: { approvers: ["data-owners"], reviewAfter: ["audit"] } });
    const plain = readPolicyTerms("permit", {});
    expect(plain.ok && plain.terms.notify).toBeUndefined();
    expect(plain.ok && plain.terms.reviewAfter).toBeUndefined();
  });

  it("refuse malformed group lists, as @approvers does, and any forbid", () => {
    for (const name of ["notify", "review_after"]) {
      for (const value of [null, "", "a b", "sec,", 'x"y', "a,\u0007", "s\u200becurity"]) {
        expect(problemsOf({ [name]: value }, "permit"), `${name} ${value}`).toEqual([
          `@${name} must be a comma-separated list of group names (letters, digits and _ . @ + -, at most 128, as in the configuration), got ${value === null ? "no value" : JSON.stringify(value)}`,
        ]);
      }
      expect(problemsOf({ [name]: "security" }, "forbid")).toContain(
        `@${name} has no meaning on a forbid policy: a forbid always denies`,
      );
    }
  });
});

describe("break-glass in a decision", () => {
  it("allows at once only with a ticket and the flag, naming whom to tell and who looks back", async () => {
    const engine = await engineFor({ "break-glass.cedar": BREAK_GLASS_POLICY });
    const ask = (context: Record<string, unknown>, ticket?: string) =>
      engine.decide(
        policyQueryOf(agent(), {
          action: "db:export",
          resource: "db://prod/customers",
          credentialType: "jwt",
          reason: "outage",
          ...(ticket !== undefined ? { ticket } : {}),
          context: context as JsonObject,
        }),
      );
    expect(ask({ break_glass: true }, "INC-1")).toMatchObject({
      effect: "allow",
      policies: ["customers-break-glass"],
      requirements: [],
      ttlSeconds: 300,
      reasonRequired: true,
      notify: ["security"],
      reviewAfter: ["security"],
    });
    expect(ask({ break_glass: true }).effect).toBe("deny");
    expect(ask({ break_glass: true }, "CHG-1").effect).toBe("deny");
    expect(ask({}, "INC-1").effect).toBe("deny");
  });

  it("takes the union of every determining permit's groups", async () => {
    const engine = await engineFor({
      "a.cedar": `
        @id("a") @notify("security") @review_after("security,audit")
        permit (principal, action, resource);
        @id("b") @approvers("ops") @notify("sre") @review_after("security")
        permit (principal, action, resource);
        @id("c") @approvers("ops")
        permit (principal, action == Action::"y", resource);
        @id("other") @notify("nobody") @review_after("nobody")
        permit (principal, action == Action::"other", resource);`,
    });
    const x = engine.decide(query("x", "r"));
    expect(x.effect).toBe("approve");
    expect(x.notify).toEqual(["security", "sre"]);
    expect(x.reviewAfter).toEqual(["audit", "security"]);
    // Telling and looking back never change who approves.
    expect(x.requirements).toEqual([{ groups: ["ops"], quorum: 1 }]);
    const y = engine.decide(query("y", "r"));
    expect(y.reviewAfter).toEqual(["audit", "security"]);
  });
});
