import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createWritClient, type WritClient } from "../../sdk/client.js";
import { isWritApiError, type WritErrorCode } from "../../sdk/errors.js";
import { type CommandIo, EXIT, UsageError } from "../command.js";
import { printable } from "./render-request.js";

/** Where client commands connect when WRIT_URL is not set: `writ dev`'s default address. */
export const DEFAULT_WRIT_URL = "http://127.0.0.1:8787";

/** The environment every client command reads; repeated in each command's help. */
export const ENVIRONMENT_HELP = `
Environment:
  WRIT_URL    The writ server (default ${DEFAULT_WRIT_URL})
  WRIT_KEY    Your writ key (required, unless WRIT_TOKEN_FILE is set)
  WRIT_TOKEN_FILE
              Agents: a file holding a workload-identity token (e.g. a Kubernetes
              projected service-account token), read again when it nears expiry`;

const REQUEST_ID = /^req_[A-Za-z0-9_-]{22}$/;

/** API codes that mean the request itself was refused or is over: exit 3, not 1. */
const REFUSED_CODES: ReadonlySet<WritErrorCode> = new Set([
  "policy_denied",
  "on_behalf_of_not_allowed",
  "request_denied",
  "request_cancelled",
  "request_expired",
  "request_revoked",
]);

/**
 * Runs `parseArgs` and turns every one of its complaints (unknown option,
 * missing value, stray positional) into a usage error, exit 2.
 */
export function parseCommandLine<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) {
      throw new UsageError((error as Error).message);
    }
    throw error;
  }
}

/** The single `<id>` positional of commands that act on one request. */
export function requestIdArgument(positionals: readonly string[]): string {
  const [id, ...extra] = positionals;
  if (id === undefined)
    throw new UsageError("give the request id, e.g. req_3q2-7wEvXv9bE1c8S3iRzA");
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (!REQUEST_ID.test(id))
    throw new UsageError(`"${id}" is not a request id (req_ and 22 characters)`);
  return id;
}

/** Parses `writ <command> <request id> [--json]`, the shape of most one-request commands. */
export function parseIdAndJson(args: readonly string[]): { id: string; json: boolean } {
  const { values, positionals } = parseCommandLine(() =>
    parseArgs({
      args: [...args],
      options: { json: { type: "boolean", default: false } },
      strict: true,
      allowPositionals: true,
    }),
  );
  return { id: requestIdArgument(positionals), json: values.json };
}

export function rejectPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
}

/** Why the token in WRIT_TOKEN_FILE could not be used: the file and the reason, never its contents. */
class TokenFileError extends Error {
  override readonly name = "TokenFileError";
}

// The same rule the client applies to a bearer token, checked here so the
// message can name the file instead of an anonymous provider.
const TOKEN_FORMAT = /^[\x21-\x7e]{1,8192}$/;

/** Reads the agent's workload-identity token, naming the file in every failure. */
async function readTokenFile(path: string): Promise<string> {
  const where = `WRIT_TOKEN_FILE ${printable(path)}`;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new TokenFileError(`${where} cannot be read (${reason})`);
  }
  const token = text.trim();
  if (token === "") throw new TokenFileError(`${where} is empty`);
  if (!TOKEN_FORMAT.test(token)) {
    throw new TokenFileError(
      `${where} does not hold a token (1 to 8192 printable ASCII characters, no spaces)`,
    );
  }
  return token;
}

/** A client for the server and key in the environment. */
export function connectFromEnv(io: CommandIo): WritClient {
  const key = io.env.WRIT_KEY?.trim();
  const tokenFile = io.env.WRIT_TOKEN_FILE?.trim();
  if ((key === undefined || key === "") && (tokenFile === undefined || tokenFile === "")) {
    throw new UsageError(
      "WRIT_KEY is not set: set WRIT_KEY to your writ key (`writ dev` prints where the demo keys are)",
    );
  }
  const url = io.env.WRIT_URL?.trim() || DEFAULT_WRIT_URL;
  try {
    if (key === undefined || key === "") {
      // The platform rotates the file; the client rereads it as its token nears expiry.
      return createWritClient({
        url,
        tokenProvider: () => readTokenFile(tokenFile as string),
      });
    }
    return createWritClient({ url, key });
  } catch (error) {
    if (error instanceof TypeError) {
      const what = /^key\b/.test(error.message) ? "WRIT_KEY" : "WRIT_URL";
      throw new UsageError(`${what}: ${error.message}`);
    }
    throw error;
  }
}

/** The exit code for an API error: 3 when the request was refused or is over, else 1. */
export function exitCodeFor(code: WritErrorCode): number {
  return REFUSED_CODES.has(code) ? EXIT.denied : EXIT.failed;
}

/**
 * Runs a client command's body, printing API errors as
 * `writ <cmd>: <code>: <message>` on stderr with their exit code.
 */
export async function reportApiErrors(
  command: string,
  io: CommandIo,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (!isWritApiError(error)) throw error;
    // The client keeps a provider's failure only as the cause; the CLI's own
    // provider says which file failed and why, which is what the person needs.
    const cause = error.cause instanceof TokenFileError ? ` ${error.cause.message}.` : "";
    io.stderr(`writ ${command}: ${printable(error.code)}: ${printable(error.message)}${cause}\n`);
    return exitCodeFor(error.code);
  }
}

/** Prints a value as one line of JSON on stdout. */
export function printJson(io: CommandIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value)}\n`);
}
