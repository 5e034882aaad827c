import { parseArgs } from "node:util";
import { MAX_WAIT_SECONDS } from "../../sdk/client.js";
import { type Command, EXIT, UsageError } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  parseIdAndJson,
  printJson,
  reportApiErrors,
  requestIdArgument,
} from "./client-context.js";
import { credentialForShell, describeCredential, describeRequest } from "./render-request.js";
import { endedWithoutCredential, requestCommand } from "./request.js";
import { approveCommand, denyCommand, pendingCommand } from "./review.js";

export const statusCommand: Command = {
  path: ["status"],
  summary: "Show a request: status, approvals, reviews, deadline",
  help: `
Usage: writ status <id> [--wait <seconds>] [--json]

Shows a request. Agents see their own requests; reviewers and auditors see all.

Options:
  --wait <seconds>   Wait up to this long (0-${MAX_WAIT_SECONDS}) for the status to change first
  --json             Print the request as JSON

Exit codes: 0 shown; 1 server or network error; 2 bad command line; 3 the
request was denied, cancelled, expired, or revoked before it was collected.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: { wait: { type: "string" }, json: { type: "boolean", default: false } },
        strict: true,
        allowPositionals: true,
      }),
    );
    const id = requestIdArgument(positionals);
    let waitSeconds: number | undefined;
    if (values.wait !== undefined) {
      waitSeconds = Number(values.wait);
      if (!/^\d{1,2}$/.test(values.wait) || waitSeconds > MAX_WAIT_SECONDS) {
        throw new UsageError(
          `--wait takes a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`,
        );
      }
    }
    const client = connectFromEnv(io);
    return reportApiErrors("status", io, async () => {
      const request = await client.get(id, waitSeconds === undefined ? {} : { waitSeconds });
      if (values.json) printJson(io, request);
      else io.stdout(`${describeRequest(request).join("\n")}\n`);
      return endedWithoutCredential(request) ? EXIT.denied : EXIT.ok;
    });
  },
};

export const credentialCommand: Command = {
  path: ["credential"],
  summary: "Collect the credential of an approved request, once (agents)",
  help: `
Usage: writ credential <id> [--json]

Mints and prints the credential of your approved request. It can be collected
once: keep it, writ never shows it again. stdout gets the credential alone (a
JWT, or AWS export lines); what it is and when it expires go to stderr.

Options:
  --json   Print { "credential": { ... } }

Exit codes: 0 collected; 1 server or network error (e.g. approval_pending,
credential_already_issued); 2 bad command line; 3 the request was denied
(also by the policies in force now, or because the agent may no longer act for
its on_behalf_of person), cancelled, expired or revoked.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, json } = parseIdAndJson(args);
    const client = connectFromEnv(io);
    return reportApiErrors("credential", io, async () => {
      const credential = await client.collectCredential(id);
      if (json) {
        printJson(io, { credential });
      } else {
        io.stderr(`${id}: ${describeCredential(credential)}\n`);
        io.stdout(credentialForShell(credential));
      }
      return EXIT.ok;
    });
  },
};

export const cancelCommand: Command = {
  path: ["cancel"],
  summary: "Withdraw your pending or uncollected request (agents)",
  help: `
Usage: writ cancel <id> [--json]

Cancels your request while it waits for approval or for you to collect it.

Options:
  --json   Print the cancelled request as JSON

Exit codes: 0 cancelled; 1 server or network error (e.g. request_not_pending);
2 bad command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, json } = parseIdAndJson(args);
    const client = connectFromEnv(io);
    return reportApiErrors("cancel", io, async () => {
      const request = await client.cancel(id);
      if (json) printJson(io, request);
      else io.stdout(`${request.id} ${request.status}\n`);
      return EXIT.ok;
    });
  },
};

/** Commands that talk to a running writ over its HTTP API. */
export const clientCommands: readonly Command[] = [
  requestCommand,
  statusCommand,
  credentialCommand,
  cancelCommand,
  pendingCommand,
  approveCommand,
  denyCommand,
];
