import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { startWritCli } from "../support/cli.js";

const ROOT = resolve(import.meta.dirname, "../..");

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** Runs `writ …` in-process and collects what it prints. */
async function writ(args: readonly string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: {},
    stderrIsTty: false,
  });
  return { code, stdout, stderr };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "writ-policy-test-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A policy directory with one permit that sets no terms, and `cases` in `tests/`. */
async function policiesWith(cases: unknown[]): Promise<string> {
  const dir = await tempDir();
  await writeFile(join(dir, "open.cedar"), `@id("open") permit(principal, action, resource);`);
  await mkdir(join(dir, "tests"));
  await writeFile(join(dir, "tests", "cases.json"), JSON.stringify({ cases }));
  return dir;
}

const openCase = (extra: Record<string, unknown>) => ({
  name: "a permit without terms",
  principal: { id: "agent-1", owner: "alice@example.com" },
  action: "db:read",
  resource: "db://x",
  expect: "allow",
  ...extra,
});

describe("writ policy test", () => {
  it("falls back to the TTL and approval timeout docs/policies.md states", async () => {
    const doc = await readFile(join(ROOT, "docs", "policies.md"), "utf8");
    const stated = /the runner uses [^.]*?(\d+) s and (\d+) s/.exec(doc.replace(/\s+/g, " "));
    expect(stated, "docs/policies.md names the runner's fallback terms").not.toBeNull();
    const [, ttlSeconds, approvalTimeoutSeconds] = stated ?? [];
    const dir = await policiesWith([
      openCase({
        expect_ttl_seconds: Number(ttlSeconds),
        expect_approval_timeout_seconds: Number(approvalTimeoutSeconds),
      }),
    ]);

    const result = await writ(["policy", "test", "--policies", dir]);
    expect(result.stdout).toMatch(/\n1 passed, 0 failed\n$/);
    expect(result.code).toBe(0);
  });

  it("takes the fallback terms and the policy directory from --config", async () => {
    const dir = await policiesWith([
      openCase({ expect_ttl_seconds: 120, expect_approval_timeout_seconds: 600 }),
    ]);
    const configFile = join(await tempDir(), "writ.json");
    await writeFile(
      configFile,
      JSON.stringify({
        policies: { dir },
        requests: { default_ttl_seconds: 120, approval_timeout_seconds: 600 },
      }),
    );

    // Not ./policies with its own passing cases: the directory the server would load.
    const result = await writ(["policy", "test", "--config", configFile]);
    expect(result.stdout).toMatch(/\n1 passed, 0 failed\n$/);
    expect(result.code).toBe(0);

    const other = await policiesWith([openCase({ expect: "deny" })]);
    const overridden = await writ(["policy", "test", "--config", configFile, "--policies", other]);
    expect(overridden.stdout).toMatch(/0 passed, 1 failed/);
    expect(overridden.code).toBe(1);
  });

  it("honours WRIT_CONFIG as writ serve does, says what it used, and lets --policies win", async () => {
    // The built CLI, from the repository root: ./policies there holds the shipped
    // policies and cases, which pass with writ's own defaults.
    const dir = await policiesWith([
      openCase({ expect_ttl_seconds: 120, expect_approval_timeout_seconds: 600 }),
    ]);
    const configFile = join(await tempDir(), "writ.json");
    await writeFile(
      configFile,
      JSON.stringify({
        policies: { dir },
        requests: { default_ttl_seconds: 120, approval_timeout_seconds: 600 },
      }),
    );
    const env: NodeJS.ProcessEnv = { ...process.env, WRIT_CONFIG: configFile };
    const run = (args: readonly string[], withEnv = env) =>
      startWritCli(["policy", "test", ...args], withEnv, 30_000).done;

    const fromEnv = await run([]);
    expect(fromEnv.stderr).toBe("");
    expect(fromEnv.stdout).toBe(
      `policies: ${dir} (policies.dir of the configuration)\n` +
        `configuration: ${configFile} (WRIT_CONFIG); TTL 120 s and approval timeout 600 s where a policy sets none\n` +
        "1 passed, 0 failed\n",
    );
    expect(fromEnv.code).toBe(0);

    // An explicit directory wins; the configuration still gives the defaults.
    const other = await policiesWith([
      openCase({ expect_ttl_seconds: 120, expect_approval_timeout_seconds: 600 }),
    ]);
    const overridden = await run(["--policies", other, "--json"]);
    expect(JSON.parse(overridden.stdout)).toEqual({
      ok: true,
      policies_dir: other,
      config: configFile,
      defaults: { ttl_seconds: 120, approval_timeout_seconds: 600 },
      passed: 1,
      failed: [],
    });
    expect(overridden.code).toBe(0);

    // --config wins over WRIT_CONFIG, as for writ serve.
    const flagFile = join(await tempDir(), "flag.json");
    await writeFile(flagFile, JSON.stringify({ policies: { dir: other } }));
    const flagged = await run(["--config", flagFile]);
    expect(flagged.stdout).toContain(`configuration: ${flagFile} (--config); TTL 300 s`);
    expect(flagged.stdout).toMatch(/0 passed, 1 failed\n$/);
    expect(flagged.code).toBe(1);

    const { WRIT_CONFIG: _, ...bare } = env;
    const withoutConfig = await run(["--policies", dir], bare);
    expect(withoutConfig.stdout).toContain(
      "configuration: none (writ's defaults); TTL 300 s and approval timeout 900 s where a policy sets none\n",
    );
  }, 60_000);

  it("with --json, reports each failure to load as one JSON object with a stable code", async () => {
    const run = (args: readonly string[]) =>
      startWritCli(["policy", "test", "--json", ...args], { PATH: process.env.PATH }, 30_000).done;
    const broken = await policiesWith([openCase({})]);
    await writeFile(join(broken, "broken.cedar"), "permit(");
    const untested = await tempDir();
    await writeFile(join(untested, "open.cedar"), "permit(principal, action, resource);");
    const malformed = await policiesWith([openCase({ expect: "maybe" })]);
    const badConfig = join(await tempDir(), "writ.json");
    await writeFile(badConfig, "{ not json");

    const outcomes: [args: string[], code: string, file: string | undefined][] = [
      [["--config", badConfig], "config_invalid", undefined],
      [["--policies", broken], "policies_invalid", join(broken, "broken.cedar")],
      [["--policies", untested], "policy_tests_missing", join(untested, "tests")],
      [
        ["--policies", malformed],
        "policy_case_file_invalid",
        join(malformed, "tests", "cases.json"),
      ],
    ];
    for (const [args, code, file] of outcomes) {
      const result = await run(args);
      expect(result.stderr, code).toBe("");
      expect(result.stdout.trimEnd().split("\n"), code).toHaveLength(1);
      const report = JSON.parse(result.stdout) as {
        ok: boolean;
        error: { code: string; message: string; file?: string };
      };
      expect(report.ok, code).toBe(false);
      expect(report.error.code).toBe(code);
      expect(report.error.message, code).not.toBe("");
      expect(report.error.file, code).toBe(file);
      expect(result.code, code).toBe(1);
    }
    // The codes are the ones docs/policies.md lists.
    const doc = await readFile(join(ROOT, "docs", "policies.md"), "utf8");
    for (const [, code] of outcomes) expect(doc).toContain(`| \`${code}\` |`);
  });
});
