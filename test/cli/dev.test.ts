import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/command.js";
import { collect, ROOT, type RunResult, startWritCli } from "../support/cli.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";

// The built CLI (`npm test` builds first), as a user runs it from the project.

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-dev-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Environment without the caller's writ settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  for (const name of ["WRIT_CONFIG", "WRIT_REDIS_URL", "WRIT_URL", "WRIT_KEY"]) delete env[name];
  return env;
}

/** Runs `script` with sh from the project root, as a user pastes it into a shell. */
function sh(script: string): Promise<RunResult> {
  return collect(spawn("sh", ["-c", script], { cwd: ROOT, env: cleanEnv() }), script, 30_000);
}

describe("writ dev --port", () => {
  it("takes digits only, as writ serve does: a usage error before anything listens", async () => {
    for (const port of ["1e3", "0x10", "", " 80", "+80", "8.0", "65536", "-1"]) {
      const result = await startWritCli(
        ["dev", "--data-dir", join(dir, "ports"), `--port=${port}`],
        cleanEnv(),
        10_000,
      ).done;
      expect(result.code, JSON.stringify(port)).toBe(EXIT.usage);
      expect(result.stderr, JSON.stringify(port)).toContain(
        "--port takes a number from 0 to 65535",
      );
    }
  }, 60_000);
});

describe("writ dev's hints", () => {
  let dev: WritProcess;
  beforeAll(async () => {
    dev = await startWritProcess(["dev", "--port", "0", "--data-dir", join(dir, "hints")]);
  });
  afterAll(async () => {
    await dev?.stop();
  });

  it("run as printed, from the project after npm install", async () => {
    const printed = dev.stdout();
    const hints = printed
      .slice(printed.indexOf("Try it:\n") + "Try it:\n".length)
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("API docs:"));
    expect(hints).toHaveLength(4);
    // `writ` itself is not on PATH after a project install; npx finds it.
    for (const hint of hints.slice(2))
      expect(hint).toMatch(/^(WRIT_KEY=\$\(.*\) )?npx writ (request|approve) /);

    const [exportUrl, exportKey, request, approve] = hints;
    const asked = await sh([exportUrl, exportKey, request].join("\n"));
    expect(asked.code, asked.stderr).toBe(0);
    const id = /req_[A-Za-z0-9_-]{22}/.exec(asked.stdout)?.[0];
    expect(id, asked.stdout).toBeDefined();
    expect(asked.stdout).toContain("pending");

    const approved = await sh([exportUrl, approve?.replace("<request id>", id ?? "")].join("\n"));
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`approved ${id}`);
  }, 60_000);
});
