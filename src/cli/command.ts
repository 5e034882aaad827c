/** Where a command writes, so tests can capture output without a subprocess. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal: progress and wait indicators go there, never to stdout. */
  stderrIsTty: boolean;
}

export interface Command {
  /** Words that select it, e.g. `["policy", "test"]`. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Full help text, shown by `--help`. */
  readonly help: string;
  /** Returns the process exit code. */
  run(args: readonly string[], io: CommandIo): Promise<number>;
}

/** Exit codes shared by every command; documented in the README. */
export const EXIT = {
  ok: 0,
  /** The server answered with an error, or the operation failed. */
  failed: 1,
  /** The command line was wrong. */
  usage: 2,
  /** The request was denied, cancelled or expired. */
  denied: 3,
} as const;

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
