import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PolicyLoadError } from "../../src/policy/policy-set.js";
import { PolicyTestFileError, runPolicyTests } from "../../src/policy/policy-test.js";
import { DEMO_POLICIES_DIR, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const POLICY = `@id("export") @approvers("owners") @quorum("2") @ttl("300")
permit(principal, action == Action::"db:export", resource);`;

const principal = { id: "agent-1", owner: "alice" };

async function suite(cases: unknown, policy = POLICY): Promise<string> {
  const temp = await tempPolicies({ "main.cedar": policy });
  cleanups.push(temp.remove);
  await mkdir(join(temp.dir, "tests"));
  const body = typeof cases === "string" ? cases : JSON.stringify(cases);
  await writeFile(join(temp.dir, "tests", "cases.json"), body);
  return temp.dir;
}

describe("runPolicyTests", () => {
  it("checks the escalation a decision carries", async () => {
    const dir = await suite(
      {
        cases: [
          {
            name: "escalates to security after ten minutes",
            principal,
            action: "db:export",
            resource: "db://x",
            expect: "approve",
            expect_escalate_after_seconds: 600,
            expect_escalate_to: ["security"],
          },
          {
            name: "wrongly expects no escalation",
            principal,
            action: "db:export",
            resource: "db://x",
            expect: "approve",
            expect_escalate_after_seconds: 0,
            expect_escalate_to: [],
          },
        ],
      },
      `@id("export") @approvers("owners") @escalate_after("600") @escalate_to("security")
permit(principal, action == Action::"db:export", resource);`,
    );
    const result = await runPolicyTests({ policiesDir: dir });
    expect(result.passed).toBe(1);
    expect(result.failed).toEqual([
      expect.objectContaining({
        name: "wrongly expects no escalation",
        expected: "escalate_after_seconds 0; escalate_to []",
        actual: "escalate_after_seconds 600; escalate_to [security]",
      }),
    ]);
  });

  it("checks the groups a decision tells and the groups that review it afterwards", async () => {
    const dir = await suite(
      {
        cases: [
          {
            name: "break-glass tells security and has it look back",
            principal: { ...principal, attributes: { on_call: "true" } },
            action: "db:export",
            resource: "db://x",
            context: { data: { break_glass: true } },
            expect: "allow",
            expect_notify: ["security", "audit"],
            expect_review_after: ["security"],
          },
          {
            name: "the regular path tells nobody extra",
            principal,
            action: "db:export",
            resource: "db://x",
            context: { data: {} },
            expect: "approve",
            expect_notify: [],
            expect_review_after: [],
          },
          {
            name: "wrongly expects nobody told and no look back",
            principal: { ...principal, attributes: { on_call: "true" } },
            action: "db:export",
            resource: "db://x",
            context: { data: { break_glass: true } },
            expect: "allow",
            expect_notify: [],
            expect_review_after: [],
          },
        ],
      },
      `@id("break-glass") @notify("security,audit") @review_after("security")
permit(principal, action == Action::"db:export", resource)
when { principal has on_call && principal.on_call == "true" &&
  context.data has break_glass && context.data.break_glass == true };
@id("export") @approvers("owners")
permit(principal, action == Action::"db:export", resource)
unless { context.data has break_glass };`,
    );
    const result = await runPolicyTests({ policiesDir: dir });
    expect(result.passed).toBe(2);
    expect(result.failed).toEqual([
      expect.objectContaining({
        name: "wrongly expects nobody told and no look back",
        expected: "notify []; review_after []",
        actual: "notify [audit, security]; review_after [security]",
      }),
    ]);
  });

  it("passes every shipped demo case", async () => {
    const result = await runPolicyTests({ policiesDir: DEMO_POLICIES_DIR });
    expect(result.failed).toEqual([]);
    expect(result.passed).toBeGreaterThanOrEqual(6);
  });

  it("reports a case whose expectation is wrong", async () => {
    const dir = await suite({
      cases: [
        {
          name: "export needs approval",
          principal,
          action: "db:export",
          resource: "db://x",
          expect: "approve",
          expect_quorum: 2,
          expect_groups: ["owners"],
          expect_ttl_seconds: 300,
        },
        {
          name: "wrongly expects an allow",
          principal,
          action: "db:export",
          resource: "db://x",
          expect: "allow",
          expect_quorum: 1,
          expect_policies: ["export"],
        },
      ],
    });
    const result = await runPolicyTests({ policiesDir: dir });
    expect(result.passed).toBe(1);
    expect(result.failed).toEqual([
      {
        file: join(dir, "tests", "cases.json"),
        name: "wrongly expects an allow",
        expected: "effect allow; quorum 1",
        actual: "effect approve; quorum 2",
      },
    ]);
  });

  it("shows evaluation errors next to a failing case", async () => {
    const dir = await suite(
      {
        cases: [{ name: "errors", principal, action: "x", resource: "r", expect: "allow" }],
      },
      `@id("broken") permit(principal, action, resource) when { context.nope };`,
    );
    const [failure] = (await runPolicyTests({ policiesDir: dir })).failed;
    expect(failure?.actual).toMatch(
      /^effect deny; errors \[broken\]; evaluation errors: broken: .*nope/,
    );
  });

  it("fails a deny that came from a policy failing to evaluate, unless the case expects it", async () => {
    // The guardrail is wrong ("AWS" where the server sends "aws") and never fires
    // in production. The case leaves out credential_type, which the server always
    // sends, so the guardrail errors instead, and that error denies too.
    const dir = await suite(
      {
        cases: [
          {
            name: "contractors get no AWS credentials",
            principal: { ...principal, attributes: { contractor: "yes" } },
            action: "s3:GetObject",
            resource: "arn:aws:s3:::reports/q3.csv",
            context: { reason: "weekly summary" },
            expect: "deny",
            expect_policies: ["no-aws-for-contractors"],
          },
          {
            name: "a context the server never sends fails closed",
            principal: { ...principal, attributes: { contractor: "yes" } },
            action: "s3:GetObject",
            resource: "arn:aws:s3:::reports/q3.csv",
            expect: "deny",
            expect_errors: ["no-aws-for-contractors"],
          },
          {
            name: "wrongly expects an error",
            principal,
            action: "s3:GetObject",
            resource: "arn:aws:s3:::reports/q3.csv",
            context: { credential_type: "aws" },
            expect: "allow",
            expect_errors: ["no-aws-for-contractors"],
          },
        ],
      },
      `@id("open") permit(principal, action, resource);
@id("no-aws-for-contractors") forbid(principal, action, resource)
  when { principal has contractor && context.credential_type == "AWS" };`,
    );
    const result = await runPolicyTests({ policiesDir: dir });
    expect(result.passed).toBe(1);
    expect(result.failed).toEqual([
      {
        file: join(dir, "tests", "cases.json"),
        name: "contractors get no AWS credentials",
        expected: "errors []",
        actual: expect.stringMatching(
          /^errors \[no-aws-for-contractors\]; evaluation errors: no-aws-for-contractors: .*credential_type/,
        ),
      },
      {
        file: join(dir, "tests", "cases.json"),
        name: "wrongly expects an error",
        expected: "errors [no-aws-for-contractors]",
        actual: "errors []",
      },
    ]);
  });

  it("reads cases from another directory when asked", async () => {
    const dir = await suite({ cases: [] });
    const elsewhere = await tempPolicies({
      "more.json": JSON.stringify({
        cases: [{ name: "denied", principal, action: "db:read", resource: "r", expect: "deny" }],
      }),
    });
    cleanups.push(elsewhere.remove);
    const result = await runPolicyTests({ policiesDir: dir, testsDir: elsewhere.dir });
    expect(result).toEqual({ passed: 1, failed: [] });
  });

  it("names the file and the field of a malformed case", async () => {
    const dir = await suite({
      cases: [
        { name: "ok", principal, action: "a", resource: "r", expect: "deny" },
        { name: "typo", principal: { id: "a" }, action: "a", resource: "r", expect: "denied" },
        { name: "extra", principal, action: "a", resource: "r", expect: "deny", expec: 1 },
      ],
    });
    const error = await runPolicyTests({ policiesDir: dir }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(PolicyTestFileError);
    const { file, issues, message } = error as PolicyTestFileError;
    expect(file).toBe(join(dir, "tests", "cases.json"));
    expect(issues).toEqual([
      expect.stringMatching(/^cases\[1\]\.principal\.owner: /),
      expect.stringMatching(/^cases\[1\]\.expect: /),
      expect.stringMatching(/^cases\[2\]: .*expec/),
    ]);
    expect(message).toContain("cases.json: cases[1].principal.owner");
  });

  it("refuses a case file that is not JSON, or repeats a case name", async () => {
    const notJson = await suite("{ cases: ");
    await expect(runPolicyTests({ policiesDir: notJson })).rejects.toThrow(
      /cases\.json: not readable JSON/,
    );
    const twice = { name: "same", principal, action: "a", resource: "r", expect: "deny" };
    const repeated = await suite({ cases: [twice, twice] });
    await expect(runPolicyTests({ policiesDir: repeated })).rejects.toThrow(
      /duplicate case name "same"/,
    );
  });

  it("refuses a case file nested thousands of levels deep, naming the file", async () => {
    const context = `${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`;
    const dir = await suite(
      `{"cases": [{"name": "deep", "principal": {"id": "a", "owner": "b"}, "action": "a", "resource": "r", "expect": "deny", "context": ${context}}]}`,
    );
    const error = await runPolicyTests({ policiesDir: dir }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(PolicyTestFileError);
    expect((error as Error).message).toMatch(/cases\.json: nests deeper than \d+ levels/);
  });

  it("refuses a policy directory without tests", async () => {
    const temp = await tempPolicies({ "main.cedar": POLICY });
    cleanups.push(temp.remove);
    await expect(runPolicyTests({ policiesDir: temp.dir })).rejects.toThrow(
      /cannot read the tests directory/,
    );
  });

  it("fails on policies that do not load", async () => {
    const dir = await suite(
      { cases: [{ name: "any", principal, action: "a", resource: "r", expect: "deny" }] },
      "permit(",
    );
    await expect(runPolicyTests({ policiesDir: dir })).rejects.toBeInstanceOf(PolicyLoadError);
  });
});
