import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadPolicySet, PolicyLoadError } from "../../src/policy/policy-set.js";
import { DEMO_POLICIES_DIR, tempPolicies } from "./temp-policies.js";

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function dirWith(files: Record<string, string>): Promise<string> {
  const temp = await tempPolicies(files);
  cleanups.push(temp.remove);
  return temp.dir;
}

async function loadError(dir: string): Promise<PolicyLoadError> {
  const error = await loadPolicySet(dir).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(PolicyLoadError);
  return error as PolicyLoadError;
}

describe("loadPolicySet", () => {
  it("loads the demo policies with their terms", async () => {
    const set = await loadPolicySet(DEMO_POLICIES_DIR);
    expect(set.files.map((file) => file.slice(DEMO_POLICIES_DIR.length + 1))).toEqual([
      "demo.cedar",
      "guardrails.cedar",
    ]);
    expect(set.policies.get("customers-export")?.terms).toEqual({
      approvers: ["data-owners"],
      quorum: 2,
      ttlSeconds: 300,
      approvalTimeoutSeconds: 900,
      reasonRequired: true,
      sensitiveFields: ["customer_email"],
    });
    expect(set.policies.get("no-iam-attach-role-policy")?.effect).toBe("forbid");
  });

  it("names the file, line and column of a syntax error", async () => {
    const dir = await dirWith({
      "good.cedar": "permit(principal, action, resource);",
      "broken.cedar": "// first line\npermit(principal action, resource);",
    });
    const error = await loadError(dir);
    expect(error.file).toBe(join(dir, "broken.cedar"));
    expect(error.message).toContain(join(dir, "broken.cedar"));
    expect(error.message).toMatch(/line 2, column 18: unexpected token `action`/);
  });

  it.each([
    ['@approvers("ops") @quorum("0")', /@quorum must be a positive integer, got "0"/],
    ['@approvers("ops") @quorum("21")', /@quorum must be at most 20, got "21"/],
    ['@approvers("ops") @quorum("2.0")', /@quorum must be a positive integer, got "2.0"/],
    ['@ttl("-5")', /@ttl must be a positive integer, got "-5"/],
    ['@ttl("5m")', /@ttl must be a positive integer, got "5m"/],
    ["@ttl", /@ttl must be a positive integer, got no value/],
    ['@ttl("43201")', /@ttl must be at most 43200 \(12 hours\), got "43201"/],
    [
      '@approvers("ops") @approval_timeout("604801")',
      /@approval_timeout must be at most 604800 \(7 days\), got "604801"/,
    ],
    // Beyond what a date can hold: every list of requests would fail to render it.
    [
      '@approvers("ops") @approval_timeout("9007199254740991")',
      /@approval_timeout must be at most 604800 \(7 days\), got "9007199254740991"/,
    ],
    ['@approvers("")', /@approvers must be a comma-separated list of group names/],
    ['@approvers("ops,,sre")', /@approvers must be a comma-separated list/],
    ['@reason("yes")', /@reason must be "required" or "optional", got "yes"/],
    ['@sensitive("a b")', /@sensitive must be a comma-separated list/],
    ['@approver("ops")', /unknown annotation @approver/],
    ['@id("")', /@id must be 1-128 characters/],
  ])("refuses %s", async (annotation, message) => {
    const dir = await dirWith({
      "team.cedar": `permit(principal, action, resource);

${annotation}
permit(principal, action, resource);`,
    });
    const error = await loadError(dir);
    expect(error.file).toBe(join(dir, "team.cedar"));
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/line 3/);
  });

  it("names the policy whose annotation is wrong", async () => {
    const dir = await dirWith({
      "team.cedar": `@id("export") @approvers("owners") @quorum("zero")
        permit(principal, action, resource);`,
    });
    const error = await loadError(dir);
    expect(error.problems).toEqual([
      {
        file: join(dir, "team.cedar"),
        policyId: "export",
        message: expect.stringMatching(/^@quorum must be a positive integer, got "zero"/),
      },
    ]);
    expect(error.message).toContain(`team.cedar: policy "export": @quorum`);
  });

  it("refuses a group name no configured group could have, such as a look-alike", async () => {
    // "ѕecurity" starts with a Cyrillic letter and "data-owners\u200b" ends in a
    // zero-width space: both read as real group names, and neither can ever match one.
    const dir = await dirWith({
      "break-glass.cedar": `@id("glass") @notify("\u0455ecurity") @review_after("security")
        permit(principal, action, resource);
@id("export") @approvers("data-owners\u200b") permit(principal, action, resource);
@id("page") @approvers("data-owners") @escalate_to("on-call\u00b7") @escalate_after("60")
        permit(principal, action, resource);`,
    });
    const error = await loadError(dir);
    expect(error.problems.map((problem) => [problem.policyId, problem.message])).toEqual([
      ["glass", expect.stringMatching(/^@notify must be a comma-separated list of group names/)],
      [
        "export",
        expect.stringMatching(/^@approvers must be a comma-separated list of group names/),
      ],
      [
        "page",
        expect.stringMatching(/^@escalate_to must be a comma-separated list of group names/),
      ],
    ]);
  });

  it("refuses an invisible character in a masked field or an id", async () => {
    // A zero-width space pasted after "customer_email" would leave the real field
    // unmasked in every notification, with nothing to show why.
    const dir = await dirWith({
      "export.cedar": `@id("export") @approvers("data-owners") @sensitive("customer_email\u200b")
        permit(principal, action, resource);
@id("\u2060guard") forbid(principal, action == Action::"iam:AttachRolePolicy", resource);`,
    });
    const error = await loadError(dir);
    expect(error.problems.map((problem) => [problem.policyId, problem.message])).toEqual([
      ["export", expect.stringMatching(/^@sensitive must be a comma-separated list of non-empty/)],
      ["export:1", expect.stringMatching(/^@id must be 1-128 characters/)],
    ]);
  });

  it("refuses a policy naming an entity type writ never sends, which could never match", async () => {
    const dir = await dirWith({
      "ok.cedar": `@id("fine") permit(principal is Agent, action, resource is Resource)
        when { principal == Agent::"a" && resource == Resource::"r" };`,
      "typo.cedar": `// A guardrail with a misspelt type would never fire.
@id("no-prod") forbid(principal, action, resource)
  when { principal == Agnet::"ci-bot" };

@id("by-group") forbid(principal in Group::"contractors", action, resource is Res);`,
    });
    const error = await loadError(dir);
    expect(error.problems).toEqual([
      {
        file: join(dir, "typo.cedar"),
        policyId: "no-prod",
        message: expect.stringMatching(
          /^names entity type `Agnet`, which writ never sends .* \(line 2\)$/,
        ),
      },
      {
        file: join(dir, "typo.cedar"),
        policyId: "by-group",
        message: expect.stringMatching(
          /^names entity types `Group`, `Res`, which writ never sends/,
        ),
      },
    ]);
  });

  it("refuses `in` a single entity, which writ's entities (no parents) make an exact match", async () => {
    const dir = await dirWith({
      "ok.cedar": `@id("sets") permit(principal, action in [Action::"db:read", Action::"db:list"], resource)
        when { resource in [Resource::"db://a", Resource::"db://b"] && resource.uri like "db://prod/*" };`,
      "guard.cedar": `// Meant to cover everything under db://prod; covers only db://prod itself.
@id("no-prod") forbid (principal, action, resource in Resource::"db://prod");

@id("team") permit (principal in Agent::"team-data", action in Action::"writes", resource is Resource);

@id("typed") forbid (principal, action, resource is Resource in Resource::"db://prod");

@id("cond") forbid (principal, action, resource)
  when { principal in Agent::"contractors" || resource is Resource in Resource::"db://prod" };`,
    });
    const error = await loadError(dir);
    const file = join(dir, "guard.cedar");
    expect(error.problems).toEqual([
      {
        file,
        policyId: "no-prod",
        message: expect.stringMatching(
          /^`resource in Resource::"db:\/\/prod"` holds only for that exact entity: writ sends no entity hierarchy.*write `resource == Resource::"db:\/\/prod"`.*`resource.uri like "db:\/\/prod\/\*"`.*\(line 2\)$/,
        ),
      },
      {
        file,
        policyId: "team",
        message: expect.stringMatching(
          /^`principal in Agent::"team-data"`, `action in Action::"writes"` hold only for/,
        ),
      },
      {
        file,
        policyId: "typed",
        message: expect.stringMatching(/^`resource in Resource::"db:\/\/prod"` holds only for/),
      },
      {
        file,
        policyId: "cond",
        message: expect.stringMatching(
          /^`principal in Agent::"contractors"`, `resource in Resource::"db:\/\/prod"` hold only for/,
        ),
      },
    ]);
  });

  it("loads an action list of one, which Cedar stores as it stores `in` a single action", async () => {
    const dir = await dirWith({
      "one.cedar": `// A list of one today; more actions may join it.
@id("drop") forbid (principal, action in [ // the one destructive action
  Action::"db:drop" ], resource);
@id("tricky") @description("action in Action::\\"x\\", (") permit (principal, action in [Action::"db:read"], resource);`,
    });
    const set = await loadPolicySet(dir);
    expect([...set.policies.keys()].sort()).toEqual(["drop", "tricky"]);

    const single = await dirWith({
      "one.cedar": `@id("list") permit (principal, action in [Action::"db:read"], resource);
@id("writes") @description("action in [Action::\\"x\\"]") forbid (principal, action in Action::"writes", resource);`,
    });
    const error = await loadError(single);
    expect(error.problems.map((problem) => problem.policyId)).toEqual(["writes"]);
  });

  it("refuses a quorum without approvers and approval terms on a forbid", async () => {
    const dir = await dirWith({
      "a.cedar": `@id("q") @quorum("2") permit(principal, action, resource);`,
      "b.cedar": `@id("f") @approvers("ops") forbid(principal, action, resource);`,
    });
    const error = await loadError(dir);
    expect(error.problems.map((problem) => [problem.policyId, problem.message])).toEqual([
      ["q", expect.stringMatching(/@quorum needs @approvers/)],
      ["f", expect.stringMatching(/@approvers has no meaning on a forbid policy/)],
    ]);
  });

  it("refuses an @id used twice, even across files", async () => {
    const dir = await dirWith({
      "a.cedar": `@id("same") permit(principal, action, resource);`,
      "b.cedar": `@id("same") forbid(principal, action, resource);`,
    });
    const error = await loadError(dir);
    expect(error.file).toBe(join(dir, "b.cedar"));
    expect(error.message).toMatch(/policy "same": duplicate policy id, already used in .*a\.cedar/);
  });

  it("refuses an @id that collides with a generated one", async () => {
    const dir = await dirWith({
      "a.cedar": `permit(principal, action, resource);`,
      "b.cedar": `@id("a:0") forbid(principal, action, resource);`,
    });
    await expect(loadPolicySet(dir)).rejects.toThrow(/duplicate policy id/);
  });

  it("refuses templates", async () => {
    const dir = await dirWith({ "t.cedar": "permit(principal == ?principal, action, resource);" });
    await expect(loadPolicySet(dir)).rejects.toThrow(/templates .* are not supported/);
  });

  it("refuses a directory without policy files, or none at all", async () => {
    const empty = await dirWith({ "notes.txt": "not a policy" });
    await expect(loadPolicySet(empty)).rejects.toThrow(/no \.cedar files/);
    await expect(loadPolicySet(join(empty, "missing"))).rejects.toThrow(
      /cannot read policy directory/,
    );
  });

  it("reads only top-level .cedar files, following symlinks and skipping dot files", async () => {
    const dir = await dirWith({
      "a.cedar": `@id("a") permit(principal, action, resource);`,
      ".#a.cedar": "this is an editor lock file, not Cedar",
    });
    await mkdir(join(dir, "tests"));
    await writeFile(join(dir, "tests", "x.cedar"), "not Cedar either");
    await mkdir(join(dir, "..data"));
    await writeFile(
      join(dir, "..data", "b.cedar"),
      `@id("b") permit(principal, action, resource);`,
    );
    await symlink(join(dir, "..data", "b.cedar"), join(dir, "b.cedar"));
    const set = await loadPolicySet(dir);
    expect([...set.policies.keys()]).toEqual(["a", "b"]);
  });

  it("refuses a .cedar symlink it cannot follow instead of dropping its policies", async () => {
    const dir = await dirWith({ "open.cedar": `@id("open") permit(principal, action, resource);` });
    // A guardrail kept elsewhere whose target is missing (not mounted yet, being replaced).
    await symlink(join(dir, "..data", "guardrails.cedar"), join(dir, "guardrails.cedar"));
    const error = await loadError(dir);
    expect(error.file).toBe(join(dir, "guardrails.cedar"));
    expect(error.message).toMatch(/guardrails\.cedar: cannot read/);
  });

  it("accepts a file holding only comments", async () => {
    const dir = await dirWith({ "empty.cedar": "// nothing permitted yet\n" });
    const set = await loadPolicySet(dir);
    expect(set.policies.size).toBe(0);
  });

  describe("reading again a file that held policies and now holds none", () => {
    const OPEN = `@id("open") permit(principal, action, resource);`;
    const NO_DROP = `@id("no-drop") forbid(principal, action == Action::"drop", resource);`;

    async function inForceAndEmptied() {
      const temp = await tempPolicies({ "open.cedar": OPEN, "guardrails.cedar": NO_DROP });
      cleanups.push(temp.remove);
      const inForce = await loadPolicySet(temp.dir);
      // What a reload sees between the truncation and the write of
      // `echo '…' > guardrails.cedar`.
      await temp.write("guardrails.cedar", "");
      return { temp, inForce };
    }

    it("waits for the writer and takes the file it wrote", async () => {
      const { temp, inForce } = await inForceAndEmptied();
      let settled = 0;
      const set = await loadPolicySet(temp.dir, {
        inForce,
        settle: async () => {
          settled += 1;
          await temp.write("guardrails.cedar", `${NO_DROP}\n`);
        },
      });
      expect(settled).toBe(1);
      expect([...set.policies.keys()].sort()).toEqual(["no-drop", "open"]);
    });

    it("takes a file emptied on purpose once it is still empty after the wait", async () => {
      const { temp, inForce } = await inForceAndEmptied();
      let settled = 0;
      const set = await loadPolicySet(temp.dir, {
        inForce,
        settle: async () => {
          settled += 1;
        },
      });
      expect(settled).toBe(1);
      expect([...set.policies.keys()]).toEqual(["open"]);
    });

    it("does not wait for other changes", async () => {
      const temp = await tempPolicies({ "open.cedar": OPEN, "guardrails.cedar": NO_DROP });
      cleanups.push(temp.remove);
      const inForce = await loadPolicySet(temp.dir);
      await temp.write(
        "open.cedar",
        `@id("reads") permit(principal, action == Action::"read", resource);`,
      );
      await temp.write("more.cedar", "// nothing yet\n");
      const set = await loadPolicySet(temp.dir, {
        inForce,
        settle: () => Promise.reject(new Error("waited")),
      });
      expect([...set.policies.keys()].sort()).toEqual(["no-drop", "reads"]);
    });
  });
});
