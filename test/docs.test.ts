import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { runCli } from "../src/cli/main.js";
import { WritConfigSchema } from "../src/config/schema.js";
import { ERROR_CODES } from "../src/domain/errors.js";
import { EVENT_TYPES } from "../src/domain/events.js";
import { ERROR_STATUS } from "../src/http/error-status.js";
import { consoleLink } from "../src/notify/slack/blocks.js";
import { startTestWrit } from "./support/harness.js";

describe("docs/api.md", () => {
  it("lists every error code with the status the server uses", async () => {
    const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
    for (const code of ERROR_CODES) {
      expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${ERROR_STATUS[code]} \\|`));
    }
  });

  it("describes every route the server documents in OpenAPI, by method and path", async () => {
    const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
    const t = await startTestWrit();
    try {
      const res = await t.writ.app.request("http://writ.test/openapi.json");
      const spec = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
      const missing: string[] = [];
      for (const [path, operations] of Object.entries(spec.paths)) {
        for (const method of Object.keys(operations)) {
          const call = `${method.toUpperCase()} ${path}`;
          // The path must end there: `GET /v1/requests/{id}` does not describe `GET /v1/requests`.
          const escaped = call.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
          if (!new RegExp(`${escaped}(?![\\w/{])`).test(doc)) missing.push(call);
        }
      }
      expect(Object.keys(spec.paths).length).toBeGreaterThan(10);
      expect(missing).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it("names every event type", async () => {
    const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
    const documented = EVENT_TYPES.filter((t) => doc.includes(`\`${t}\``));
    const missing = EVENT_TYPES.filter((t) => !documented.includes(t));
    expect(missing).toEqual([]);
  });
});

/** Each command's path (`audit tail`) and its `--help` text, as a user sees them. */
async function commandHelps(): Promise<Map<string, string>> {
  const help = async (args: readonly string[]) => {
    let out = "";
    await runCli([...args, "--help"], {
      stdout: (text) => {
        out += text;
      },
      stderr: () => {},
      env: {},
      stderrIsTty: false,
    });
    return out;
  };
  const paths = [...(await help([])).matchAll(/^ {2}writ (\S+(?: \S+)?)\s{2,}/gm)].map(
    (m) => m[1] as string,
  );
  const helps = new Map<string, string>();
  for (const path of paths) helps.set(path, await help(path.split(" ")));
  return helps;
}

/**
 * Every key path of a zod schema, `*` standing for an array element or a
 * record's value, e.g. `identities.agents.*.acts_for`.
 */
function configKeyPaths(schema: z.core.$ZodType, path: string[] = []): string[][] {
  const def = schema._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
  const inner = (key: string) => def[key] as z.core.$ZodType;
  switch (def.type) {
    case "object":
      return Object.entries(def.shape as Record<string, z.core.$ZodType>).flatMap(
        ([key, value]) => [[...path, key], ...configKeyPaths(value, [...path, key])],
      );
    case "optional":
    case "default":
    case "prefault":
    case "nullable":
      return configKeyPaths(inner("innerType"), path);
    case "pipe":
      return configKeyPaths(inner("in"), path);
    case "array":
      return configKeyPaths(inner("element"), [...path, "*"]);
    case "record":
      return configKeyPaths(inner("valueType"), [...path, "*"]);
    case "union":
      return (def.options as z.core.$ZodType[]).flatMap((option) => configKeyPaths(option, path));
    default:
      return [];
  }
}

describe("docs/configuration.md", () => {
  it("documents every key of the configuration file", async () => {
    const doc = await readFile(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const paths = configKeyPaths(WritConfigSchema);
    expect(paths.length).toBeGreaterThan(100);
    const missing: string[] = [];
    for (const path of paths) {
      const names = path.filter((part) => part !== "*");
      const key = names.at(-1) as string;
      // In the example file (`key:`, commented out or not), or named in the text
      // by its path or the tail of it (`redis.sentinel.name`, `jwks_uri`).
      const inExample = new RegExp(`(?:^|[\\s{,#-])${key}:`, "m").test(doc);
      const named = names.some((_, i) => doc.includes(`\`${names.slice(i).join(".")}\``));
      if (!inExample && !named) missing.push(names.join("."));
    }
    expect(missing).toEqual([]);
  });

  it("names, for every variable a command's --help names, that command among its users", async () => {
    const doc = await readFile(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const table = doc.slice(doc.indexOf("## Environment"));
    // variable → the "used by" cell of its row
    const usedBy = new Map<string, string>();
    for (const line of table.split("\n")) {
      const cells = line.split("|").map((cell) => cell.trim());
      for (const name of (cells[1] ?? "").matchAll(/`((?:WRIT|SLACK)_[A-Z_]+)`/g)) {
        usedBy.set(name[1] as string, cells[2] ?? "");
      }
    }
    const helps = await commandHelps();
    expect(helps.size).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const [path, help] of helps) {
      const client = help.includes("WRIT_URL");
      for (const name of new Set(help.match(/\b(?:WRIT|SLACK)_[A-Z_]+\b/g))) {
        const cell = usedBy.get(name);
        // `writ audit tail --group` names the command `audit tail`; `writ keys` covers `keys init`.
        const users = [...(cell ?? "").matchAll(/`writ ([^`]+)`/g)].map((m) =>
          (m[1] as string)
            .split(" ")
            .filter((word) => !word.startsWith("-"))
            .join(" "),
        );
        const named = users.some((user) => path === user || path.startsWith(`${user} `));
        if (!named && !(client && cell?.includes("client commands"))) {
          missing.push(`${name}: writ ${path}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("names every variable the Environment table gives a command in that command's --help", async () => {
    const doc = await readFile(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const table = doc.slice(doc.indexOf("## Environment"));
    const helps = await commandHelps();
    const missing: string[] = [];
    for (const line of table.split("\n")) {
      const cells = line.split("|").map((cell) => cell.trim());
      const names = [
        ...(cells[1] ?? "").matchAll(/^`((?:WRIT|SLACK)_[A-Z_]+)`|, `((?:WRIT|SLACK)_[A-Z_]+)`/g),
      ].map((m) => (m[1] ?? m[2]) as string);
      const users = [...(cells[2] ?? "").matchAll(/`writ ([^`]+)`/g)].map((m) =>
        (m[1] as string)
          .split(" ")
          .filter((word) => !word.startsWith("-"))
          .join(" "),
      );
      for (const name of names) {
        for (const [path, help] of helps) {
          // `writ keys` stands for every `keys` command; `client commands` is checked above.
          const reads = users.some((user) => path === user || path.startsWith(`${user} `));
          if (reads && !help.includes(name)) missing.push(`${name}: writ ${path}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("console_url in the docs", () => {
  it("is the console's address: the review links built from each example open the console", async () => {
    const t = await startTestWrit();
    try {
      const examples: string[] = [];
      for (const page of ["configuration.md", "teams.md", "slack.md"]) {
        const doc = await readFile(new URL(`../docs/${page}`, import.meta.url), "utf8");
        for (const m of doc.matchAll(/console_url: (https:\/\/\S+)/g))
          examples.push(m[1] as string);
      }
      expect(examples.length).toBeGreaterThan(0);
      for (const example of examples) {
        const link = new URL(consoleLink(example, "req_AAAAAAAAAAAAAAAAAAAAAA"));
        const res = await t.writ.app.request(`http://writ.test${link.pathname}`);
        // Signed out, a console page sends the browser to the sign-in form.
        expect(res.status, example).toBe(303);
        expect(res.headers.get("location"), example).toBe("/console/login");
      }
    } finally {
      await t.close();
    }
  });
});
