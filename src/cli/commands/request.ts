import { parseArgs } from "node:util";
import type { CreateRequestInput, WritClient, WritRequest } from "../../sdk/client.js";
import { isWritApiError } from "../../sdk/errors.js";
import { type Command, type CommandIo, EXIT, UsageError } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  printJson,
  rejectPositionals,
  reportApiErrors,
} from "./client-context.js";
import { catchInterruptions, exitCodeForSignal } from "./interruptions.js";
import {
  approvalProgress,
  credentialForShell,
  describeCredential,
  describeNewRequest,
  formatDuration,
  printable,
} from "./render-request.js";

/** Statuses in which a request ended without a credential: exit 3. */
const ENDED_WITHOUT_CREDENTIAL: ReadonlySet<string> = new Set(["denied", "cancelled", "expired"]);

/**
 * Whether the request ended without a credential ever being collected (exit 3):
 * denied, cancelled, expired, or revoked before it was collected.
 */
export function endedWithoutCredential(request: WritRequest): boolean {
  return (
    ENDED_WITHOUT_CREDENTIAL.has(request.status) ||
    (request.status === "revoked" && request.credential === undefined)
  );
}

// The server marks a request expired when its deadline passes; waiting a little
// beyond it lets `--wait` report `expired` rather than a client-side timeout.
export const DEADLINE_GRACE_MS = 30_000;

const HELP = `
Usage: writ request --action <action> --resource <resource> [options]

Asks writ for a credential for one action on one resource (agent keys). The
policy allows it at once, sends it to reviewers, or denies it.

Options:
  --action <action>        The action, e.g. db:export or s3:GetObject (required)
  --resource <resource>    The resource, e.g. db://prod/customers (required)
  --reason <text>          Why; some policies require one
  --ticket <id>            A ticket reference, e.g. DATA-1234
  --audience <aud>         Who will accept the JWT (required for jwt credentials)
  --credential <type>      jwt (default) or aws
  --context <json>         A JSON object of facts for policies and reviewers
  --on-behalf-of <person>  The human this agent acts for (they cannot approve it)
  --ttl <seconds>          Wanted credential lifetime (the policy may cap it)
  --wait                   Wait for the decision, then collect and print the credential
  --timeout <seconds>      With --wait: give up after this long (default: the
                           request's approval deadline)
  --json                   Print JSON: the request, or with --wait { request, credential }

With --wait, stdout gets the credential alone (a JWT, or AWS export lines) and
everything else goes to stderr, so this works:
  TOKEN=$(writ request --action db:export --resource db://prod/customers \\
    --audience billing-api --reason "churn analysis" --wait)

When the wait times out or is interrupted (SIGINT, SIGTERM, SIGHUP), the
request stays open: writ prints its id and the commands to collect it later
(\`writ credential <id>\`) or withdraw it (\`writ cancel <id>\`).

Exit codes: 0 created (or, with --wait, approved and collected); 1 server or
network error, or --wait timed out; 2 bad command line; 3 denied by policy (also
at collection) or a reviewer, refused for an --on-behalf-of the agent may not
act for, cancelled, expired, or revoked before it was collected; 128 + the
signal's number when a signal ends the wait (130 for SIGINT, 143 for SIGTERM).
${ENVIRONMENT_HELP}
`;

interface RequestValues {
  action?: string | undefined;
  resource?: string | undefined;
  reason?: string | undefined;
  ticket?: string | undefined;
  audience?: string | undefined;
  credential?: string | undefined;
  context?: string | undefined;
  "on-behalf-of"?: string | undefined;
  ttl?: string | undefined;
}

export function parseContext(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // Where, never what: the parser's message quotes the text, which may hold
    // facts a policy masks as sensitive.
    const at = /at position (\d+)/.exec((error as Error).message)?.[1];
    throw new UsageError(
      `--context is not valid JSON${at !== undefined ? ` (at character ${Number(at) + 1})` : ""}; give a JSON object, e.g. '{"rows": 12000}'`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`--context must be a JSON object, e.g. '{"rows": 12000}'`);
  }
  return value as Record<string, unknown>;
}

export function wholeSeconds(option: string, text: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) === 0) {
    throw new UsageError(`${option} takes a whole number of seconds greater than 0`);
  }
  return Number(text);
}

function requestInput(values: RequestValues): CreateRequestInput {
  if (values.action === undefined) throw new UsageError("--action is required");
  if (values.resource === undefined) throw new UsageError("--resource is required");
  const credential = values.credential ?? "jwt";
  if (credential !== "jwt" && credential !== "aws") {
    throw new UsageError("--credential must be jwt or aws");
  }
  return {
    action: values.action,
    resource: values.resource,
    credential,
    ...(values.reason !== undefined ? { reason: values.reason } : {}),
    ...(values.ticket !== undefined ? { ticket: values.ticket } : {}),
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    ...(values["on-behalf-of"] !== undefined ? { on_behalf_of: values["on-behalf-of"] } : {}),
    // The schema types context values as JSON; JSON.parse produced exactly that.
    ...(values.context !== undefined
      ? { context: parseContext(values.context) as CreateRequestInput["context"] }
      : {}),
    ...(values.ttl !== undefined ? { ttl_seconds: wholeSeconds("--ttl", values.ttl) } : {}),
  };
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * A one-line live indicator on stderr while waiting. It is drawn only when
 * stderr is a terminal: stdout is usually captured (`TOKEN=$(…)`) during a wait,
 * so whether stdout is a terminal says nothing about where the person looks.
 */
export function startWaitIndicator(io: CommandIo, request: WritRequest) {
  const live = io.stderrIsTty;
  const startedAt = Date.now();
  let progress = approvalProgress(request);
  let frame = 0;
  const draw = () => {
    const spinner = SPINNER[frame++ % SPINNER.length] ?? "";
    const elapsed = formatDuration(Date.now() - startedAt);
    io.stderr(
      `\r\x1b[2K${spinner} waiting for approval of ${request.id}: ${progress} approvals · ${elapsed}`,
    );
  };
  if (live) draw();
  const timer = live ? setInterval(draw, 125) : undefined;
  timer?.unref();
  let stopped = false;
  return {
    update(latest: WritRequest) {
      if (latest.status === "pending") progress = approvalProgress(latest);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (live) io.stderr("\r\x1b[2K");
    },
  };
}

export function describeEnding(request: WritRequest): string {
  const deny = request.reviews.find((r) => r.verdict === "deny");
  switch (request.status) {
    case "denied":
      return deny === undefined
        ? `${request.id} was denied.`
        : `${request.id} was denied by ${deny.reviewer}${deny.comment !== undefined ? `: ${deny.comment}` : "."}`;
    case "expired":
      return `${request.id} expired before it was approved.`;
    case "cancelled":
      return `${request.id} was cancelled.`;
    case "revoked":
      if (request.credential === undefined)
        return `${request.id} was revoked before it was collected.`;
      return `${request.id} is revoked: its credential was already collected, and ended.`;
    default:
      return `${request.id} is ${request.status}: its credential was already collected.`;
  }
}

async function waitAndCollect(
  client: WritClient,
  io: CommandIo,
  created: WritRequest,
  options: { json: boolean; timeoutSeconds: number | undefined },
): Promise<number> {
  const { json } = options;
  if (!json) io.stderr(`${describeNewRequest(created).join("\n")}\n`);
  let decided = created;
  if (created.status === "pending") {
    const timeoutMs =
      options.timeoutSeconds !== undefined
        ? options.timeoutSeconds * 1000
        : Math.max(0, Date.parse(created.expires_at) - Date.now()) + DEADLINE_GRACE_MS;
    // Stopping the wait does not withdraw the request (`writ exec` does, as it
    // made the request for one command): the person may still want it, so they
    // are told how to collect it later or withdraw it.
    const id = printable(created.id);
    const stillOpen = `It stays open: check it with \`writ status ${id}\`, collect it once approved with \`writ credential ${id}\`, or withdraw it with \`writ cancel ${id}\`.\n`;
    // Caught before anything says the wait began, so a signal sent on seeing
    // that line cannot arrive before writ listens for it.
    const interruptions = catchInterruptions();
    const indicator = startWaitIndicator(io, created);
    if (!json && !io.stderrIsTty) {
      io.stderr(`Waiting up to ${formatDuration(timeoutMs)} for the decision…\n`);
    }
    try {
      decided = await client.waitForDecision(created.id, {
        timeoutMs,
        signal: interruptions.signal,
        onPoll: (r) => indicator.update(r),
      });
    } catch (error) {
      const signal = interruptions.received;
      if (signal !== undefined) {
        indicator.stop();
        io.stderr(`writ request: ${signal} received while waiting for ${id}.\n`);
        io.stderr(stillOpen);
        return exitCodeForSignal(signal);
      }
      if (isWritApiError(error) && error.code === "wait_timeout") {
        indicator.stop();
        io.stderr(`writ request: ${error.code}: ${printable(error.message)}\n`);
        io.stderr(stillOpen);
        return EXIT.failed;
      }
      throw error;
    } finally {
      interruptions.stop();
      indicator.stop();
    }
  }
  if (decided.status !== "approved") {
    if (json) printJson(io, { request: decided });
    else io.stderr(`${printable(describeEnding(decided))}\n`);
    return endedWithoutCredential(decided) ? EXIT.denied : EXIT.failed;
  }
  const credential = await client.collectCredential(decided.id);
  if (json) {
    printJson(io, { request: decided, credential });
  } else {
    const approvers = decided.reviews.filter((r) => r.verdict === "approve").map((r) => r.reviewer);
    const by = approvers.length > 0 ? `approved by ${approvers.join(", ")}` : "approved";
    io.stderr(`${decided.id} ${by}; ${describeCredential(credential)}\n`);
    io.stdout(credentialForShell(credential));
  }
  return EXIT.ok;
}

export const requestCommand: Command = {
  path: ["request"],
  summary: "Ask for a credential for one action on one resource (agents)",
  help: HELP,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: {
          action: { type: "string" },
          resource: { type: "string" },
          reason: { type: "string" },
          ticket: { type: "string" },
          audience: { type: "string" },
          credential: { type: "string" },
          context: { type: "string" },
          "on-behalf-of": { type: "string" },
          ttl: { type: "string" },
          wait: { type: "boolean", default: false },
          timeout: { type: "string" },
          json: { type: "boolean", default: false },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const input = requestInput(values);
    if (values.timeout !== undefined && !values.wait) {
      throw new UsageError("--timeout only applies with --wait");
    }
    const timeoutSeconds =
      values.timeout === undefined ? undefined : wholeSeconds("--timeout", values.timeout);
    const client = connectFromEnv(io);
    return reportApiErrors("request", io, async () => {
      const created = await client.request(input);
      if (values.wait) {
        return waitAndCollect(client, io, created, { json: values.json, timeoutSeconds });
      }
      if (values.json) printJson(io, created);
      else io.stdout(`${describeNewRequest(created).join("\n")}\n`);
      return EXIT.ok;
    });
  },
};
