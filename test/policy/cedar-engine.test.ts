import { afterEach, describe, expect, it } from "vitest";
import {
  type CedarPolicyEngine,
  type CedarPolicyEngineOptions,
  createCedarPolicyEngine,
} from "../../src/policy/cedar-engine.js";
import { agent, DEFAULTS, DEMO_POLICIES_DIR, query, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function engineFor(
  files: Record<string, string>,
  options: Partial<CedarPolicyEngineOptions> = {},
): Promise<CedarPolicyEngine> {
  const temp = await tempPolicies(files);
  cleanups.push(temp.remove);
  const engine = await createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS, ...options });
  cleanups.push(() => engine.close());
  return engine;
}

describe("demo policies", () => {
  async function demo(): Promise<CedarPolicyEngine> {
    const engine = await createCedarPolicyEngine({ dir: DEMO_POLICIES_DIR, defaults: DEFAULTS });
    cleanups.push(() => engine.close());
    return engine;
  }

  it("allows reading the demo reports bucket at once", async () => {
    const engine = await demo();
    const decision = engine.decide(query("s3:GetObject", "arn:aws:s3:::demo-reports/q3.csv"));
    expect(decision).toEqual({
      effect: "allow",
      policies: ["demo-reports-read"],
      requirements: [],
      ttlSeconds: DEFAULTS.ttlSeconds,
      approvalTimeoutSeconds: DEFAULTS.approvalTimeoutSeconds,
      reasonRequired: false,
      sensitiveFields: [],
    });
  });

  it("does not treat a look-alike bucket as the reports bucket", async () => {
    const engine = await demo();
    const decision = engine.decide(query("s3:GetObject", "arn:aws:s3:::demo-reports-x/q3.csv"));
    expect(decision.effect).toBe("deny");
    expect(decision.policies).toEqual([]);
  });

  it("asks two data owners before exporting customers", async () => {
    const engine = await demo();
    const decision = engine.decide(
      query("db:export", "db://prod/customers", { reason: "churn", data: { rows: 10 } }),
    );
    expect(decision).toEqual({
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
      ttlSeconds: 300,
      approvalTimeoutSeconds: 900,
      reasonRequired: true,
      sensitiveFields: ["customer_email"],
    });
  });

  it("forbids attaching role policies", async () => {
    const engine = await demo();
    const decision = engine.decide(query("iam:AttachRolePolicy", "arn:aws:iam::1:role/app"));
    expect(decision.effect).toBe("deny");
    expect(decision.policies).toEqual(["no-iam-attach-role-policy"]);
  });

  it("denies what no policy permits, naming no policy", async () => {
    const engine = await demo();
    const decision = engine.decide(query("s3:DeleteObject", "arn:aws:s3:::demo-reports/q3.csv"));
    expect(decision.effect).toBe("deny");
    expect(decision.policies).toEqual([]);
    expect(decision.requirements).toEqual([]);
  });

  it("lists the ids in force", async () => {
    const engine = await demo();
    expect(engine.policyIds()).toEqual([
      "customers-export",
      "demo-reports-read",
      "no-iam-attach-role-policy",
    ]);
  });
});

describe("combining policies", () => {
  it("lets a forbid beat a permit", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("open") permit(principal, action, resource);
        @id("no-delete") forbid(principal, action == Action::"s3:DeleteObject", resource);`,
    });
    expect(engine.decide(query("s3:GetObject", "r")).effect).toBe("allow");
    const denied = engine.decide(query("s3:DeleteObject", "r"));
    expect(denied.effect).toBe("deny");
    expect(denied.policies).toEqual(["no-delete"]);
  });

  it("asks for approval when one permit allows and another needs approvers", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("open") permit(principal, action, resource);`,
      "b.cedar": `@id("careful") @approvers("ops")
        permit(principal, action == Action::"x", resource);`,
    });
    const decision = engine.decide(query("x", "r"));
    expect(decision.effect).toBe("approve");
    expect(decision.policies).toEqual(["careful", "open"]);
    expect(decision.requirements).toEqual([{ groups: ["ops"], quorum: 1 }]);
  });

  it("takes the strictest terms of all satisfied permits", async () => {
    const engine = await engineFor({
      "a.cedar": `
        @id("p1") @ttl("600") @approvers("ops,sre") @quorum("2") @sensitive("ssn")
        permit(principal, action, resource);
        @id("p2") @ttl("120") @approval_timeout("300") @reason("required")
        @approvers("security") @sensitive("ssn,email")
        permit(principal, action, resource);
        @id("p3") @ttl("900") @approvers("sre, ops")
        permit(principal, action, resource);
        @id("p4") @approvers("security")
        permit(principal, action, resource);`,
    });
    const decision = engine.decide(query("x", "r"));
    expect(decision).toEqual({
      effect: "approve",
      policies: ["p1", "p2", "p3", "p4"],
      // p3 repeats p1's groups with a smaller quorum and p4 repeats p2's: both collapse.
      requirements: [
        { groups: ["ops", "sre"], quorum: 2 },
        { groups: ["security"], quorum: 1 },
      ],
      ttlSeconds: 120,
      approvalTimeoutSeconds: 300,
      reasonRequired: true,
      sensitiveFields: ["email", "ssn"],
    });
  });

  it("counts a permit without @ttl as the default TTL, so a second permit never lengthens it", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("team-read") permit(principal, action == Action::"db:read", resource);`,
      // Added later, for a wider audience, with a longer cap of its own.
      "b.cedar": `@id("long-reads") @ttl("3600") permit(principal, action, resource);`,
    });
    const decision = engine.decide(query("db:read", "db://prod/orders"));
    expect(decision.policies).toEqual(["long-reads", "team-read"]);
    expect(decision.ttlSeconds).toBe(DEFAULTS.ttlSeconds);
    expect(engine.decide(query("db:write", "db://prod/orders")).ttlSeconds).toBe(3600);
  });

  it("counts a permit with approvers but no @approval_timeout as the default timeout", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("ops") @approvers("ops") permit(principal, action == Action::"x", resource);
        @id("open") permit(principal, action == Action::"y", resource);
        @id("slow") @approvers("security") @approval_timeout("7200")
        permit(principal, action, resource);`,
    });
    const both = engine.decide(query("x", "r"));
    expect(both.requirements).toHaveLength(2);
    expect(both.approvalTimeoutSeconds).toBe(DEFAULTS.approvalTimeoutSeconds);
    // A permit that asks for no approval has no say in how long approval waits.
    const withOpen = engine.decide(query("y", "r"));
    expect(withOpen.policies).toEqual(["open", "slow"]);
    expect(withOpen.approvalTimeoutSeconds).toBe(7200);
  });

  it("applies a @ttl cap even when no approval is needed", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("short") @ttl("60") permit(principal, action, resource);`,
    });
    const decision = engine.decide(query("x", "r"));
    expect(decision.effect).toBe("allow");
    expect(decision.ttlSeconds).toBe(60);
    expect(decision.approvalTimeoutSeconds).toBe(DEFAULTS.approvalTimeoutSeconds);
  });

  it("names policies by file and index when they have no @id", async () => {
    const engine = await engineFor({
      "team.cedar": `forbid(principal, action == Action::"a", resource);
        permit(principal, action, resource);`,
    });
    expect(engine.policyIds()).toEqual(["team:0", "team:1"]);
    expect(engine.decide(query("a", "r")).policies).toEqual(["team:0"]);
  });
});

describe("the entity model", () => {
  it("exposes agent attributes, the owner and the resource uri", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("analytics") permit(principal, action, resource)
        when { principal.team == "analytics" && principal.owner == "owner@example.com"
               && resource.uri like "db://prod/*" };`,
    });
    expect(
      engine.decide(query("db:read", "db://prod/t", {}, agent({ team: "analytics" }))).effect,
    ).toBe("allow");
    expect(engine.decide(query("db:read", "db://prod/t", {}, agent({ team: "web" }))).effect).toBe(
      "deny",
    );
  });

  it("never lets an attribute named owner replace the real owner", async () => {
    const engine = await engineFor({
      "a.cedar": `permit(principal, action, resource) when { principal.owner == "mallory" };`,
    });
    const decision = engine.decide(query("x", "r", {}, agent({ owner: "mallory" })));
    expect(decision.effect).toBe("deny");
  });

  it("passes the context through, nested records and sets included", async () => {
    const engine = await engineFor({
      "a.cedar": `permit(principal, action, resource) when {
        context.ticket == "T-1" && context.data.rows == 5 && context.data.tags.contains("q3")
        && context.data.limits.max == 10 && !(context.data has gone) };`,
    });
    const context = {
      ticket: "T-1",
      data: { rows: 5, tags: ["q3", "q4"], limits: { max: 10 }, gone: null },
    };
    expect(engine.decide(query("x", "r", context)).effect).toBe("allow");
  });

  it("turns fractional numbers into strings, so comparing them fails closed", async () => {
    const engine = await engineFor({
      "a.cedar": `
        @id("as-string") permit(principal, action == Action::"s", resource)
        when { context.amount == "1.5" };
        @id("compare") permit(principal, action == Action::"n", resource)
        when { context.amount < 2 };`,
    });
    expect(engine.decide(query("s", "r", { amount: 1.5 })).effect).toBe("allow");
    const compared = engine.evaluate(query("n", "r", { amount: 1.5 }));
    expect(compared.decision.effect).toBe("deny");
    expect(compared.decision.policies).toEqual(["compare"]);
  });

  it("keeps caller data from forging entities through Cedar's escape keys", async () => {
    const engine = await engineFor({
      "a.cedar": `permit(principal, action, resource) when { context.who == Agent::"admin" };`,
    });
    const context = { who: { __entity: { type: "Agent", id: "admin" } } };
    const decision = engine.decide(query("x", "r", context));
    expect(decision.effect).toBe("deny");
  });
});

describe("failing closed", () => {
  it("denies when a policy errors, naming it and reporting the error", async () => {
    const reported: unknown[] = [];
    const temp = await tempPolicies({
      "a.cedar": `@id("open") permit(principal, action, resource);
        @id("needs-ticket") forbid(principal, action, resource) when { context.ticket == "" };`,
    });
    cleanups.push(temp.remove);
    const engine = await createCedarPolicyEngine({
      dir: temp.dir,
      defaults: DEFAULTS,
      onEvaluationError: (errors) => reported.push(...errors),
    });
    cleanups.push(() => engine.close());

    // Cedar skips the erroring forbid and would allow; writ must not.
    const evaluation = engine.evaluate(query("x", "r", {}));
    expect(evaluation.decision.effect).toBe("deny");
    expect(evaluation.decision.policies).toEqual(["needs-ticket"]);
    expect(evaluation.errors).toEqual([
      { policyId: "needs-ticket", message: expect.stringContaining("ticket") },
    ]);
    expect(reported).toEqual(evaluation.errors);
    expect(engine.decide(query("x", "r", { ticket: "T-1" })).effect).toBe("allow");
  });

  it("denies a context nested too deeply to evaluate", async () => {
    const engine = await engineFor({ "a.cedar": `permit(principal, action, resource);` });
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 40; i += 1) deep = { inner: deep };
    const evaluation = engine.evaluate(query("x", "r", deep as never));
    expect(evaluation.decision.effect).toBe("deny");
    expect(evaluation.decision.policies).toEqual([]);
    expect(evaluation.errors[0]?.message).toMatch(/nested deeper/);
  });

  it("survives an evaluation-error hook that throws", async () => {
    const temp = await tempPolicies({
      "a.cedar": `permit(principal, action, resource) when { context.missing };`,
    });
    cleanups.push(temp.remove);
    const engine = await createCedarPolicyEngine({
      dir: temp.dir,
      defaults: DEFAULTS,
      onEvaluationError: () => {
        throw new Error("logger down");
      },
    });
    cleanups.push(() => engine.close());
    expect(engine.decide(query("x", "r")).effect).toBe("deny");
  });

  it("refuses defaults that are not positive integers", async () => {
    await expect(
      createCedarPolicyEngine({
        dir: DEMO_POLICIES_DIR,
        defaults: { ttlSeconds: 0, approvalTimeoutSeconds: 60 },
      }),
    ).rejects.toThrow(TypeError);
  });
});

describe("masking on a deny", () => {
  it("keeps every @sensitive field masked when a forbid overrules the permit that named it", async () => {
    const policies = await tempPolicies({
      "export.cedar": `
        @id("export") @sensitive("customer_email")
        permit (principal, action == Action::"db:export", resource);
        @id("too-many-rows")
        forbid (principal, action == Action::"db:export", resource)
        when { context.data has rows && context.data.rows > 1000 };`,
    });
    const engine = await createCedarPolicyEngine({ dir: policies.dir, defaults: DEFAULTS });
    try {
      const allowed = engine.decide(query("db:export", "db://x", { data: { rows: 5 } }));
      expect(allowed.effect).toBe("allow");
      expect(allowed.sensitiveFields).toEqual(["customer_email"]);
      const denied = engine.decide(query("db:export", "db://x", { data: { rows: 5000 } }));
      expect(denied).toMatchObject({ effect: "deny", policies: ["too-many-rows"] });
      expect(denied.sensitiveFields).toEqual(["customer_email"]);
      const unpermitted = engine.decide(query("db:drop", "db://x"));
      expect(unpermitted.sensitiveFields).toEqual(["customer_email"]);
    } finally {
      engine.close();
      await policies.remove();
    }
  });
});

describe("the decision cache", () => {
  const OPEN = `@id("open") permit(principal, action, resource);`;

  it("answers a repeated query from the cache with the same decision", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("p") @approvers("ops") @sensitive("ssn") @aws_source_ip("192.0.2.0/24")
        permit(principal, action, resource);`,
    });
    const first = engine.evaluate(query("x", "r", { ticket: "T-1" }));
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 1, entries: 1 });
    const second = engine.evaluate(query("x", "r", { ticket: "T-1" }));
    expect(engine.decisionCacheStats()).toEqual({ hits: 1, misses: 1, entries: 1 });
    expect(second).toEqual(first);
    expect(second.decision).toMatchObject({ effect: "approve", policies: ["p"] });
    expect(engine.decide(query("x", "r", { ticket: "T-1" }))).toEqual(first.decision);
    expect(engine.decisionCacheStats().hits).toBe(2);
  });

  it("hands out decisions no caller can change", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("p") @approvers("ops") @sensitive("ssn") @aws_source_ip("192.0.2.0/24")
        permit(principal, action, resource);`,
    });
    const decision = engine.decide(query("x", "r"));
    expect(() => (decision.policies as string[]).push("forged")).toThrow(TypeError);
    expect(() => (decision.sensitiveFields as string[]).pop()).toThrow(TypeError);
    const groups = decision.requirements[0]?.groups ?? [];
    const ips = decision.awsSourceIps?.[0] ?? [];
    expect(groups).toEqual(["ops"]);
    expect(ips).toEqual(["192.0.2.0/24"]);
    expect(() => (groups as string[]).push("everyone")).toThrow(TypeError);
    expect(() => (ips as string[]).push("0.0.0.0/0")).toThrow(TypeError);
    expect(() => {
      (decision as { effect: string }).effect = "allow";
    }).toThrow(TypeError);
    expect(engine.decide(query("x", "r"))).toEqual({
      effect: "approve",
      policies: ["p"],
      requirements: [{ groups: ["ops"], quorum: 1 }],
      ttlSeconds: DEFAULTS.ttlSeconds,
      approvalTimeoutSeconds: DEFAULTS.approvalTimeoutSeconds,
      reasonRequired: false,
      sensitiveFields: ["ssn"],
      awsSourceIps: [["192.0.2.0/24"]],
    });
    expect(engine.decisionCacheStats().hits).toBe(1);
  });

  it("serves no decision of the old set once a reload installed a new one", async () => {
    const temp = await tempPolicies({ "main.cedar": OPEN });
    cleanups.push(temp.remove);
    const engine = await createCedarPolicyEngine({ dir: temp.dir, defaults: DEFAULTS });
    cleanups.push(() => engine.close());
    expect(engine.decide(query("x", "r")).effect).toBe("allow");
    expect(engine.decide(query("x", "r")).effect).toBe("allow");
    expect(engine.decisionCacheStats()).toEqual({ hits: 1, misses: 1, entries: 1 });

    await temp.write("main.cedar", `@id("closed") forbid(principal, action, resource);`);
    await engine.reload();

    expect(engine.decisionCacheStats().entries).toBe(0);
    const after = engine.decide(query("x", "r"));
    expect(after.effect).toBe("deny");
    expect(after.policies).toEqual(["closed"]);
    expect(engine.decisionCacheStats()).toEqual({ hits: 1, misses: 2, entries: 1 });
  });

  it("misses when the agent, action, resource or any single context field differs", async () => {
    const engine = await engineFor({
      "a.cedar": `@id("ticketed") permit(principal, action, resource)
        when { context.ticket == "T-1" };`,
    });
    const context = { ticket: "T-1", n: 1, flag: true, data: { tags: ["a"], rows: 5 } };
    expect(engine.decide(query("x", "r", context)).effect).toBe("allow");
    const variants = [
      query("x", "r", { ...context, ticket: "T-2" }),
      query("x", "r", { ...context, n: 2 }),
      query("x", "r", { ...context, n: "1" }),
      query("x", "r", { ...context, flag: false }),
      query("x", "r", { ...context, data: { tags: ["b"], rows: 5 } }),
      query("x", "r", { ...context, data: { tags: ["a"], rows: 6 } }),
      query("x", "r", { ...context, extra: "" }),
      query("y", "r", context),
      query("x", "r2", context),
      query("x", "r", context, agent({}, "agent-2")),
      query("x", "r", context, agent({ team: "web" })),
      query("x", "r", context, { ...agent(), owner: "other@example.com" }),
    ];
    for (const variant of variants) engine.decide(variant);
    expect(engine.decisionCacheStats()).toEqual({
      hits: 0,
      misses: variants.length + 1,
      entries: variants.length + 1,
    });
    expect(engine.decide(query("x", "r", { ...context, ticket: "T-2" })).effect).toBe("deny");
    expect(engine.decisionCacheStats().hits).toBe(1);
  });

  it("never caches a failed evaluation: each one is reported", async () => {
    const reported: unknown[] = [];
    const engine = await engineFor(
      { "a.cedar": `@id("needs") permit(principal, action, resource) when { context.missing };` },
      { onEvaluationError: (errors) => reported.push(...errors) },
    );
    for (let i = 0; i < 3; i += 1) expect(engine.decide(query("x", "r")).effect).toBe("deny");
    expect(reported).toHaveLength(3);
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 3, entries: 0 });
  });

  it("drops the least recently used decision beyond decisionCacheSize", async () => {
    const engine = await engineFor({ "a.cedar": OPEN }, { decisionCacheSize: 2 });
    engine.decide(query("a", "r"));
    engine.decide(query("b", "r"));
    engine.decide(query("c", "r"));
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 3, entries: 2 });
    engine.decide(query("a", "r"));
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 4, entries: 2 });
    // Now [c, a]: asking for c makes a the oldest, so d pushes a out.
    engine.decide(query("c", "r"));
    engine.decide(query("d", "r"));
    engine.decide(query("c", "r"));
    expect(engine.decisionCacheStats()).toEqual({ hits: 2, misses: 5, entries: 2 });
    engine.decide(query("a", "r"));
    expect(engine.decisionCacheStats()).toEqual({ hits: 2, misses: 6, entries: 2 });
  });

  it("caches nothing when decisionCacheSize is 0", async () => {
    const engine = await engineFor({ "a.cedar": OPEN }, { decisionCacheSize: 0 });
    const first = engine.decide(query("x", "r"));
    expect(engine.decide(query("x", "r"))).toEqual(first);
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 2, entries: 0 });
  });

  it("does not remember requests too large to keep", async () => {
    const engine = await engineFor({ "a.cedar": OPEN });
    const big = { note: "x".repeat(5000) };
    engine.decide(query("x", "r", big));
    expect(engine.decide(query("x", "r", big)).effect).toBe("allow");
    expect(engine.decisionCacheStats()).toEqual({ hits: 0, misses: 2, entries: 0 });
  });

  it("refuses a decisionCacheSize that is not a non-negative integer", async () => {
    for (const decisionCacheSize of [-1, 1.5, Number.NaN]) {
      await expect(
        createCedarPolicyEngine({ dir: DEMO_POLICIES_DIR, defaults: DEFAULTS, decisionCacheSize }),
      ).rejects.toThrow(TypeError);
    }
  });
});
