import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CedarPolicyEngine, createCedarPolicyEngine } from "../../src/policy/cedar-engine.js";
import { loadPolicySet } from "../../src/policy/policy-set.js";
import { runPolicyTests } from "../../src/policy/policy-test.js";
import { agent, DEFAULTS, DEMO_POLICIES_DIR, query, tempPolicies } from "./temp-policies.js";

// The examples of docs/policies.md, read from the page itself, behave as it says.

const DOC = fileURLToPath(new URL("../../docs/policies.md", import.meta.url));
const OPEN = `@id("open") permit(principal, action, resource);`;

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

let page = "";

beforeAll(async () => {
  page = await readFile(DOC, "utf8");
});

/** The fenced blocks of `language` on the page. */
function blocks(language: string): string[] {
  return [...page.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, "g"))].map(
    (match) => match[1] ?? "",
  );
}

/** An engine over the page's Cedar examples, each in its own file, plus `extra` files. */
async function examples(extra: Record<string, string> = {}): Promise<CedarPolicyEngine> {
  const files = Object.fromEntries(
    blocks("cedar").map((text, index) => [`example-${index}.cedar`, text]),
  );
  const temp = await tempPolicies({ ...files, ...extra });
  cleanups.push(temp.remove);
  const engine = await createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS });
  cleanups.push(() => engine.close());
  return engine;
}

describe("docs/policies.md examples", () => {
  it("allows the reports bucket at once and keeps demo-reports-private out", async () => {
    const engine = await examples();
    const read = engine.decide(query("s3:GetObject", "arn:aws:s3:::demo-reports/q3.csv"));
    expect(read.effect).toBe("allow");
    expect(read.policies).toEqual(["demo-reports-read"]);
    const lookAlike = query("s3:GetObject", "arn:aws:s3:::demo-reports-private/q3.csv");
    expect(engine.decide(lookAlike).effect).toBe("deny");
  });

  it("allows break-glass at once only on call, with an incident ticket and the flag", async () => {
    const engine = await examples();
    const ask = (attributes: Record<string, string>, ticket: string | undefined, flag: boolean) =>
      engine.decide(
        query(
          "db:export",
          "db://prod/orders",
          {
            credential_type: "jwt",
            has_reason: true,
            reason: "outage",
            ...(ticket !== undefined ? { ticket } : {}),
            data: flag ? { break_glass: true } : {},
          },
          agent(attributes),
        ),
      );
    expect(ask({ on_call: "true" }, "INC-1", true)).toMatchObject({
      effect: "allow",
      policies: ["orders-break-glass"],
      requirements: [],
      ttlSeconds: 300,
      reasonRequired: true,
      notify: ["security"],
      reviewAfter: ["security"],
    });
    // A false claim of break-glass is permitted by neither policy: denied, never an error.
    for (const [attributes, ticket] of [
      [{}, "INC-1"],
      [{ on_call: "false" }, "INC-1"],
      [{ on_call: "true" }, undefined],
      [{ on_call: "true" }, "CHG-1"],
    ] as const) {
      expect(ask(attributes, ticket, true)).toMatchObject({ effect: "deny", policies: [] });
    }
    // Without the claim, the regular approval applies.
    expect(ask({ on_call: "true" }, "INC-1", false)).toMatchObject({
      effect: "approve",
      policies: ["orders-export"],
    });
  });

  it("asks two data owners, with a reason, a five-minute credential and a masked field", async () => {
    const engine = await examples();
    expect(engine.decide(query("db:export", "db://prod/customers"))).toEqual({
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
      ttlSeconds: 300,
      approvalTimeoutSeconds: 900,
      reasonRequired: true,
      sensitiveFields: ["customer_email"],
    });
  });

  it("keeps the guardrail in force whatever else permits", async () => {
    const engine = await examples({ "open.cedar": OPEN });
    const attach = engine.decide(query("iam:AttachRolePolicy", "arn:aws:iam::1:role/app"));
    expect(attach.effect).toBe("deny");
    expect(attach.policies).toEqual(["no-iam-attach-role-policy"]);
  });

  it("lets analytics agents read their schema only with a reason", async () => {
    const engine = await examples();
    const analyst = agent({ team: "analytics" });
    const read = (context: { has_reason: boolean }, who = analyst) =>
      engine.decide(query("db:read", "db://prod/analytics/events", context, who)).effect;
    expect(read({ has_reason: true })).toBe("allow");
    expect(read({ has_reason: false })).toBe("deny");
    expect(read({ has_reason: true }, agent({ team: "sales" }))).toBe("deny");
    expect(read({ has_reason: true }, agent())).toBe("deny");
  });

  it("forbids production migrations and drops without a CHG ticket", async () => {
    const engine = await examples({ "open.cedar": OPEN });
    const decide = (action: string, resource: string, context = {}) =>
      engine.decide(query(action, resource, context));
    expect(decide("db:migrate", "db://prod/orders").policies).toEqual([
      "prod-changes-need-a-ticket",
    ]);
    expect(decide("db:drop", "db://prod/orders", { ticket: "SEC-1" }).effect).toBe("deny");
    expect(decide("db:migrate", "db://prod/orders", { ticket: "CHG-7" }).effect).toBe("allow");
    expect(decide("db:drop", "db://staging/orders").effect).toBe("allow");
  });

  it("passes its case file example against the shipped policies", async () => {
    const example = blocks("json").find((text) => text.includes('"cases"'));
    expect(example).toBeDefined();
    const temp = await tempPolicies({});
    cleanups.push(temp.remove);
    await mkdir(join(temp.dir, "tests"));
    await writeFile(join(temp.dir, "tests", "example.json"), example ?? "");
    const result = await runPolicyTests({
      policiesDir: DEMO_POLICIES_DIR,
      testsDir: join(temp.dir, "tests"),
    });
    expect(result).toEqual({ passed: 1, failed: [] });
  });

  it("words a loading error as its example does", async () => {
    const stated = /`(policies\/data\.cedar: policy "customers-export": @quorum [^`]*)`/.exec(page);
    expect(stated).not.toBeNull();
    const temp = await tempPolicies({});
    cleanups.push(temp.remove);
    const lines = Array.from({ length: 11 }, () => "// padding");
    await temp.write(
      "data.cedar",
      [
        ...lines,
        `@id("customers-export") @approvers("data-owners") @quorum("25")`,
        "permit(principal, action, resource);",
      ].join("\n"),
    );
    const error = await loadPolicySet(temp.dir).then(
      () => undefined,
      (thrown: unknown) => thrown as Error,
    );
    expect(error?.message.replace(temp.dir, "policies")).toContain(stated?.[1]);
  });
});
