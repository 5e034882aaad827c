import { type Command, type CommandIo, EXIT, UsageError } from "./command.js";
import { auditCommands } from "./commands/audit/index.js";
import { clientCommands } from "./commands/client.js";
import { completeCommand } from "./commands/complete.js";
import { credentialProcessCommand } from "./commands/credential-process.js";
import { devCommand } from "./commands/dev.js";
import { execCommand } from "./commands/exec.js";
import { keygenCommand } from "./commands/keygen.js";
import { keysCommands } from "./commands/keys.js";
import { mcpCommand } from "./commands/mcp.js";
import { policyTestCommand } from "./commands/policy-test.js";
import { revokeCommand } from "./commands/review.js";
import { reviewAfterCommand } from "./commands/review-after.js";
import { serveCommand } from "./commands/serve.js";

const COMMANDS: readonly Command[] = [
  devCommand,
  serveCommand,
  ...clientCommands,
  revokeCommand,
  reviewAfterCommand,
  completeCommand,
  execCommand,
  credentialProcessCommand,
  mcpCommand,
  policyTestCommand,
  keygenCommand,
  ...keysCommands,
  ...auditCommands,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(" ").length));
  const lines = COMMANDS.map((c) => `  writ ${c.path.join(" ").padEnd(width)}  ${c.summary}`);
  return [
    "writ: just-in-time, single-use credentials for AI agents.",
    "",
    "Usage: writ <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run `writ <command> --help` for a command's options.",
    "Client commands read the server URL from WRIT_URL and your key from WRIT_KEY.",
    "",
  ].join("\n");
}

/** Finds the command whose path is the longest prefix of `argv`. */
function select(
  argv: readonly string[],
): { command: Command; rest: readonly string[] } | undefined {
  let best: Command | undefined;
  for (const command of COMMANDS) {
    const matches = command.path.every((word, i) => argv[i] === word);
    if (matches && (best === undefined || command.path.length > best.path.length)) best = command;
  }
  return best === undefined ? undefined : { command: best, rest: argv.slice(best.path.length) };
}

export async function runCli(argv: readonly string[], io: CommandIo): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    io.stdout(overview());
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  if (argv[0] === "--version") {
    io.stdout("writ 0.1.0\n");
    return EXIT.ok;
  }
  const selected = select(argv);
  if (selected === undefined) {
    io.stderr(`writ: unknown command "${argv.slice(0, 2).join(" ")}"\n\n${overview()}`);
    return EXIT.usage;
  }
  const { command, rest } = selected;
  // `--help` anywhere before a `--` (after it come another program's arguments,
  // as in `writ exec … -- cmd --help`), or `-h` first: later it may be a value.
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (own.includes("--help") || own[0] === "-h") {
    io.stdout(`${command.help.trim()}\n`);
    return EXIT.ok;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    // A usage error, whether the command found it or the argument parser did,
    // says where the right usage is.
    if (
      error instanceof UsageError ||
      (error instanceof TypeError &&
        String((error as NodeJS.ErrnoException).code).startsWith("ERR_PARSE_ARGS_"))
    ) {
      io.stderr(
        `writ ${command.path.join(" ")}: ${error.message}\nRun \`writ ${command.path.join(" ")} --help\` for usage.\n`,
      );
      return EXIT.usage;
    }
    io.stderr(`writ ${command.path.join(" ")}: ${(error as Error).message}\n`);
    return EXIT.failed;
  }
}
