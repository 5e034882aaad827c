import { readdir, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { GRANT_TAG, REQUEST_TAG } from "../../src/adapters/aws/session-policy.js";

// The shipped Terraform under infra/terraform/aws, read as written: what
// writ's own role may do, and what the target roles' trust policies demand,
// checked against what src/adapters/aws actually sends.

const ROOT = resolve(import.meta.dirname, "../..");
const TERRAFORM = resolve(ROOT, "infra/terraform/aws");
const AWS_ADAPTER = resolve(ROOT, "src/adapters/aws");

/** One HCL block: its type, labels, attributes (as source text) and nested blocks. */
interface Block {
  readonly type: string;
  readonly labels: readonly string[];
  readonly attributes: Record<string, string>;
  readonly blocks: Block[];
}

/**
 * Reads the block structure of a Terraform file: enough to find statements and
 * their attributes. Attribute values stay source text (a bracket-balanced
 * expression, or a heredoc).
 */
function parseHcl(text: string): Block {
  const source = text.replace(/^\s*#.*$/gm, "");
  let at = 0;
  const skipSpace = () => {
    while (at < source.length && /\s/.test(source.charAt(at))) at++;
  };
  const readExpression = (): string => {
    const start = at;
    const heredoc = /^<<-?(\w+)\n/.exec(source.slice(at));
    if (heredoc !== null) {
      const end = new RegExp(`^\\s*${heredoc[1]}$`, "m");
      const rest = source.slice(at + heredoc[0].length);
      const close = end.exec(rest);
      if (close === null) throw new Error(`unterminated heredoc ${heredoc[1]}`);
      at += heredoc[0].length + close.index + close[0].length;
      return source.slice(start, at);
    }
    let depth = 0;
    let inString = false;
    for (; at < source.length; at++) {
      const c = source.charAt(at);
      if (inString) {
        if (c === "\\") at++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "[" || c === "{" || c === "(") depth++;
      else if (c === "]" || c === "}" || c === ")") depth--;
      else if (c === "\n" && depth === 0) break;
    }
    return source.slice(start, at).trim();
  };
  const readBody = (into: Block) => {
    for (;;) {
      skipSpace();
      if (at >= source.length || source.charAt(at) === "}") {
        at++;
        return;
      }
      const name = /^[\w-]+/.exec(source.slice(at))?.[0];
      if (name === undefined) throw new Error(`cannot read HCL at: ${source.slice(at, at + 40)}`);
      at += name.length;
      skipSpace();
      if (source.charAt(at) === "=") {
        at++;
        skipSpace();
        into.attributes[name] = readExpression();
        continue;
      }
      const labels: string[] = [];
      while (source.charAt(at) === '"') {
        const end = source.indexOf('"', at + 1);
        labels.push(source.slice(at + 1, end));
        at = end + 1;
        skipSpace();
      }
      if (source.charAt(at) !== "{") throw new Error(`expected a block after ${name}`);
      at++;
      const block: Block = { type: name, labels, attributes: {}, blocks: [] };
      readBody(block);
      into.blocks.push(block);
    }
  };
  const file: Block = { type: "file", labels: [], attributes: {}, blocks: [] };
  readBody(file);
  return file;
}

/** The string literals of an HCL list expression (`["a", "b"]`). */
function strings(expression: string | undefined): string[] {
  return [...(expression ?? "").matchAll(/"([^"]*)"/g)].map((m) => m[1] as string);
}

async function moduleFile(module: string, file = "main.tf"): Promise<Block> {
  return parseHcl(await readFile(resolve(TERRAFORM, module, file), "utf8"));
}

function find(parent: Block, type: string, ...labels: string[]): Block {
  const found = parent.blocks.find(
    (b) => b.type === type && labels.every((label, i) => b.labels[i] === label),
  );
  if (found === undefined) throw new Error(`no ${type} ${labels.join(" ")}`);
  return found;
}

function statements(file: Block, document: string): Block[] {
  return find(file, "data", "aws_iam_policy_document", document).blocks.filter(
    (b) => b.type === "statement",
  );
}

function conditions(statement: Block): { test: string; variable: string; values: string[] }[] {
  const out: { test: string; variable: string; values: string[] }[] = [];
  for (const block of statement.blocks) {
    const content =
      block.type === "condition"
        ? block
        : block.type === "dynamic" && block.labels[0] === "condition"
          ? find(block, "content")
          : undefined;
    if (content === undefined) continue;
    out.push({
      test: strings(content.attributes.test)[0] ?? "",
      variable: strings(content.attributes.variable)[0] ?? "",
      // A literal list as its strings, anything else (a variable) as written.
      values:
        strings(content.attributes.values).length > 0
          ? strings(content.attributes.values)
          : [content.attributes.values ?? ""],
    });
  }
  return out;
}

/** The IAM actions behind the SDK commands writ's AWS adapter sends. */
async function actionsWritSends(): Promise<Set<string>> {
  const actions = new Set<string>();
  for (const name of await readdir(AWS_ADAPTER)) {
    const text = await readFile(resolve(AWS_ADAPTER, name), "utf8");
    const serviceOf = new Map<string, string>();
    for (const [, names, service] of text.matchAll(
      /import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"@aws-sdk\/client-(\w+)"/g,
    )) {
      for (const imported of (names as string).split(",")) {
        serviceOf.set(imported.replace(/\btype\b/, "").trim(), service as string);
      }
    }
    for (const [, command] of text.matchAll(/new (\w+)Command\(/g)) {
      const service = serviceOf.get(`${command}Command`);
      expect(service, `where ${command}Command comes from, in ${name}`).toBeDefined();
      // Every identity may ask STS who it is: no policy grants or denies it.
      if (service === "sts" && command === "GetCallerIdentity") continue;
      actions.add(`${service}:${command}`);
      // AssumeRole with Tags and SourceIdentity needs these two as well.
      if (service === "sts" && command === "AssumeRole") {
        actions.add("sts:TagSession");
        actions.add("sts:SetSourceIdentity");
      }
    }
  }
  return actions;
}

describe("infra/terraform/aws", () => {
  it("grants writ's role exactly the AWS actions writ's adapter calls", async () => {
    const broker = await moduleFile("broker");
    const granted = statements(broker, "broker").flatMap((s) => {
      expect(strings(s.attributes.effect)).toEqual(["Allow"]);
      expect(s.attributes.resources).toBe("var.target_role_arns");
      return strings(s.attributes.actions);
    });
    expect(new Set(granted)).toEqual(await actionsWritSends());
  });

  it("lets writ's role write inline policies only on roles capped by a permissions boundary", async () => {
    const broker = await moduleFile("broker");
    const writes = statements(broker, "broker").filter((s) =>
      strings(s.attributes.actions).includes("iam:PutRolePolicy"),
    );
    expect(writes.length).toBeGreaterThan(0);
    for (const statement of writes) {
      // PutRolePolicy on a role without a boundary lets writ's role grant the
      // role anything, then assume it: an escalation to the account's admin.
      expect(conditions(statement)).toContainEqual({
        test: "StringLike",
        variable: "iam:PermissionsBoundary",
        values: ["var.target_boundary_arns"],
      });
      expect(statement.attributes.actions).toBe('["iam:PutRolePolicy"]');
    }
    const boundaries = strings(
      find(await moduleFile("broker", "variables.tf"), "variable", "target_boundary_arns")
        .attributes.default,
    );
    expect(boundaries).toEqual(["arn:aws:iam::*:policy/writ-targets/*"]);

    // Every role the target-role module creates carries such a boundary, holding
    // the role's own permissions and nothing more.
    const target = await moduleFile("target-role");
    const role = find(target, "resource", "aws_iam_role", "target");
    expect(role.attributes.permissions_boundary).toBe("aws_iam_policy.boundary.arn");
    const boundary = find(target, "resource", "aws_iam_policy", "boundary");
    expect(strings(boundary.attributes.path)).toEqual(["/writ-targets/"]);
    expect(boundary.attributes.policy).toBe("var.policy_json");
  });

  it("admits only writ's role to a target role, with the tags and source identity writ sends", async () => {
    const target = await moduleFile("target-role");
    const trust = statements(target, "trust");
    for (const statement of trust) {
      const principals = find(statement, "principals");
      expect(strings(principals.attributes.type)).toEqual(["AWS"]);
      expect(principals.attributes.identifiers).toBe("[var.broker_role_arn]");
    }
    const byAction = (action: string) => {
      const found = trust.filter((s) => strings(s.attributes.actions).includes(action));
      expect(found, action).toHaveLength(1);
      return conditions(found[0] as Block);
    };
    const requireGrant = {
      test: "Null",
      variable: `aws:RequestTag/${GRANT_TAG}`,
      values: ["false"],
    };
    const requireIdentity = { test: "Null", variable: "sts:SourceIdentity", values: ["false"] };
    expect(byAction("sts:AssumeRole")).toEqual(
      expect.arrayContaining([requireGrant, requireIdentity]),
    );
    expect(byAction("sts:AssumeRole")).toContainEqual({
      test: "StringEquals",
      variable: "sts:ExternalId",
      values: ["[condition.value]"],
    });
    expect(byAction("sts:TagSession")).toEqual(
      expect.arrayContaining([
        requireGrant,
        {
          test: "ForAllValues:StringEquals",
          variable: "aws:TagKeys",
          values: [REQUEST_TAG, GRANT_TAG],
        },
      ]),
    );
    expect(byAction("sts:SetSourceIdentity")).toContainEqual(requireIdentity);
  });
});
