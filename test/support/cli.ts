import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join, resolve } from "node:path";

/** The repository root, where the built CLI runs as a user would run it. */
export const ROOT = resolve(import.meta.dirname, "../..");
/** The built CLI (`npm test` builds before the tests run). */
export const BIN = join(ROOT, "dist/cli/bin.js");

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcessWithoutNullStreams;
  done: Promise<RunResult>;
}

/**
 * Starts `writ <args>` from the built CLI and collects its output. `done`
 * rejects (and the process is killed) if it runs longer than `timeoutMs`.
 */
export function startWritCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Running {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
  return { child, done: collect(child, `writ ${args.join(" ")}`, timeoutMs) };
}

/**
 * What `child` prints until it exits. Rejects (and kills it) naming `what` if
 * it runs longer than `timeoutMs`.
 */
export function collect(
  child: ChildProcessWithoutNullStreams,
  what: string,
  timeoutMs: number,
): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise<RunResult>((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} ran over ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}
