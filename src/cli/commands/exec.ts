import { spawn } from "node:child_process";
import { constants } from "node:os";
import { parseArgs } from "node:util";
import { type Command, type CommandIo, UsageError } from "../command.js";
import {
  AWS_REQUEST_HELP,
  AWS_REQUEST_OPTIONS,
  type AwsCredential,
  awsRequestPlan,
  reportComplete,
  requestAwsCredential,
} from "./aws-request.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  reportApiErrors,
} from "./client-context.js";
import { catchInterruptions, exitCodeForSignal, type Interruptions } from "./interruptions.js";
import { printable } from "./render-request.js";

/** What a shell answers when the command cannot be run at all. */
const EXIT_NOT_FOUND = 127;
const EXIT_NOT_EXECUTABLE = 126;

const HELP = `
Usage: writ exec --action <action> --resource <arn> [options] -- <command> [args...]

Asks writ for AWS credentials for one action on one resource (agent keys),
waits for approval, then runs the command with the credentials in its
environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN):
they are never printed. When the command exits, writ is told the work is done,
which ends the session, and the command's exit code becomes writ's.

  writ exec --action s3:GetObject --resource arn:aws:s3:::reports/q3.csv \\
    --reason "Q3 summary" -- aws s3 cp s3://reports/q3.csv .

Options:
${AWS_REQUEST_HELP}

The command does not see WRIT_KEY or WRIT_TOKEN_FILE, nor AWS profile settings
that could take precedence over the session. It runs as the same user, though,
and could read writ's own environment: run a command you do not trust as
another user.

SIGTERM or SIGHUP sent to writ while the command runs is passed on to it, and
so is SIGINT when writ has no terminal (in a terminal, Ctrl-C reaches the
command directly, and passing it on too would make it arrive twice). If the
wait times out or is interrupted, writ cancels the request; a signal before
the command starts or while writ reports completion ends the session first.
Either way writ says on stderr what it did, and how to finish by hand when it
could not.

Exit codes: the command's own (128 + the signal's number if a signal ended it;
127 if it could not be found, 126 if it could not be run); 1 server or network
error, or the wait timed out; 2 bad command line; 3 denied (also by the policies
in force at collection), cancelled, expired or revoked (the command does not
run); 128 + the signal's number if writ itself was interrupted outside the
command.
${ENVIRONMENT_HELP}
`;

// Removed from the command's environment: writ's own credentials (the command
// must not ask for more), and AWS settings that could make an SDK or the AWS CLI
// pick another identity than the session writ minted.
const WITHHELD = [
  "WRIT_KEY",
  "WRIT_TOKEN_FILE",
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_SECURITY_TOKEN",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/** The command's environment: the caller's, less what is withheld, plus the session. */
export function commandEnvironment(
  env: NodeJS.ProcessEnv,
  credential: AwsCredential,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of WITHHELD) delete out[name];
  out.AWS_ACCESS_KEY_ID = credential.access_key_id;
  out.AWS_SECRET_ACCESS_KEY = credential.secret_access_key;
  out.AWS_SESSION_TOKEN = credential.session_token;
  out.AWS_CREDENTIAL_EXPIRATION = credential.expires_at;
  return out;
}

/** Splits `… -- command args` into writ's arguments and the command. */
function splitCommand(args: readonly string[]): { own: string[]; command: string[] } {
  const separator = args.indexOf("--");
  if (separator === -1) {
    throw new UsageError("give the command to run after --, e.g. -- aws s3 cp s3://b/k .");
  }
  const command = args.slice(separator + 1);
  if (command.length === 0 || command[0] === "")
    throw new UsageError("the command after -- is empty");
  return { own: args.slice(0, separator), command };
}

/**
 * Runs the command with inherited stdio and resolves with its exit code in the
 * shell's convention. writ outlives it whatever happens, so that it can report
 * the request complete: SIGTERM or SIGHUP sent to writ is passed on to the
 * command (SIGINT too, without a terminal), and writ waits for it to exit.
 */
function run(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CommandIo,
  interruptions: Interruptions,
): Promise<number> {
  const [file = "", ...rest] = command;
  return new Promise((resolve) => {
    const child = spawn(file, rest, { env, stdio: "inherit" });
    // A Ctrl-C in a terminal reaches the command directly, from the terminal:
    // passed on as well, it would arrive twice, which many tools take as
    // "stop now, skip the cleanup" (Terraform: "Two interrupts received").
    // Without a terminal a SIGINT was sent to writ alone, and is passed on.
    const terminalInterrupts = process.stdin.isTTY === true;
    interruptions.forwardTo((signal) => {
      if (signal === "SIGINT" && terminalInterrupts) return;
      child.kill(signal);
    });
    const done = (code: number) => {
      interruptions.forwardTo(undefined);
      resolve(code);
    };
    child.once("error", (error: NodeJS.ErrnoException) => {
      io.stderr(`writ exec: cannot run ${printable(file)}: ${error.code ?? error.message}\n`);
      done(error.code === "ENOENT" ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
    });
    child.once("exit", (code, signal) => {
      if (code !== null) done(code);
      else done(128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
}

export const execCommand: Command = {
  path: ["exec"],
  summary: "Run a command with AWS credentials for one approved action (agents)",
  help: HELP,
  async run(args, io) {
    const { own, command } = splitCommand(args);
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({ args: own, options: AWS_REQUEST_OPTIONS, strict: true, allowPositionals: true }),
    );
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument "${positionals[0]}" (put the command after --)`);
    }
    const plan = awsRequestPlan(values);
    const client = connectFromEnv(io);
    const interruptions = catchInterruptions();
    try {
      return await reportApiErrors("exec", io, async () => {
        const outcome = await requestAwsCredential(client, io, "exec", plan, interruptions);
        if (!outcome.ok) return outcome.exitCode;
        const env = commandEnvironment(io.env, outcome.credential);
        const code = await run(command, env, io, interruptions);
        await reportComplete(client, io, "exec", outcome.id, interruptions.deadline);
        // A signal after the command exited, while writ was completing, is still answered.
        const { received } = interruptions;
        return received === undefined ? code : exitCodeForSignal(received);
      });
    } finally {
      interruptions.stop();
    }
  },
};
