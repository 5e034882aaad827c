import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
/** The built CLI: `npm test` builds before it runs the tests. */
export const WRIT_BIN = join(ROOT, "dist/cli/bin.js");
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

/** A `writ serve` or `writ dev` child process and what it printed. */
export interface WritProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** The API base URL it printed. */
  readonly url: string;
  /** The metrics base URL it printed, if any. */
  readonly metricsUrl: string | undefined;
  stdout(): string;
  stderr(): string;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Every process started here and not yet stopped, killed on exit if a test forgot. */
const live = new Set<ChildProcessWithoutNullStreams>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/**
 * Runs the built CLI with `args` and resolves once it prints that it listens;
 * rejects with its output if it exits first or takes too long.
 */
export function startWritProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<WritProcess> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...env };
  for (const name of ["WRIT_CONFIG", "WRIT_REDIS_URL", "WRIT_URL", "WRIT_KEY"]) {
    if (!(name in env)) delete childEnv[name];
  }
  const child = spawn(process.execPath, [WRIT_BIN, ...args], { cwd: ROOT, env: childEnv });
  live.add(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((resolveExit) => {
    child.on("exit", (code) => {
      live.delete(child);
      resolveExit(code);
    });
  });
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`writ ${args.join(" ")} did not start in time\n${out}\n${err}`));
    }, START_TIMEOUT_MS);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`writ ${args.join(" ")} exited with ${code}\n${out}\n${err}`));
    };
    child.once("exit", onExit);
    const onData = () => {
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url === undefined) return;
      // The metrics line, when there is one, comes in the same write as the URL.
      const metricsUrl = /metrics: (http:\/\/\S+)\/metrics/.exec(out)?.[1];
      clearTimeout(timer);
      child.off("exit", onExit);
      child.stdout.off("data", onData);
      resolveStart({
        child,
        url,
        metricsUrl,
        stdout: () => out,
        stderr: () => err,
        async stop(signal = "SIGTERM") {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          const force = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          child.kill(signal);
          const code = await exited;
          clearTimeout(force);
          return code;
        },
      });
    };
    child.stdout.on("data", onData);
  });
}
