import { describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";

/** Runs the CLI in-process with a key set and a server nobody listens on. */
async function writ(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const code = await runCli(args, {
    stdout: () => {},
    stderr: (text) => {
      stderr += text;
    },
    env: { WRIT_URL: "http://127.0.0.1:9", WRIT_KEY: "wk_usage_errors_only" },
    stderrIsTty: false,
  });
  return { code, stderr };
}

describe("--context that is not JSON", () => {
  // Context carries facts for reviewers, some of them sensitive (masked in
  // notifications): a typo must not print them to a CI log.
  const secret = "482913";
  const malformed = [`pin=${secret}`, `'${secret}'`, `pin ${secret}`, `{pin: ${secret}}`];

  for (const command of [["request"], ["credential-process"]]) {
    it(`writ ${command.join(" ")} refuses it without echoing what it holds`, async () => {
      for (const context of malformed) {
        const result = await writ([
          ...command,
          "--action",
          "s3:GetObject",
          "--resource",
          "arn:aws:s3:::reports/q3.csv",
          "--context",
          context,
        ]);
        expect(result.code, context).toBe(2);
        expect(result.stderr, context).toContain("--context is not valid JSON");
        expect(result.stderr, context).not.toContain(secret);
      }
    });
  }
});

describe("an unknown option", () => {
  it("is a usage error that points at the command's --help, for every command", async () => {
    let listing = "";
    await runCli(["--help"], {
      stdout: (text) => {
        listing += text;
      },
      stderr: () => {},
      env: {},
      stderrIsTty: false,
    });
    const paths = [...listing.matchAll(/^ {2}writ (\S+(?: \S+)?)\s{2,}/gm)].map(
      (m) => m[1] as string,
    );
    expect(paths.length).toBeGreaterThan(20);
    const unhelpful: string[] = [];
    for (const path of paths) {
      const result = await writ([...path.split(" "), "--no-such-option"]);
      expect(result.code, path).toBe(2);
      if (!result.stderr.includes(`Run \`writ ${path} --help\` for usage.`)) unhelpful.push(path);
    }
    expect(unhelpful).toEqual([]);
  });
});
