import { parseArgs } from "node:util";
import type { WritRequest } from "../../sdk/client.js";
import { type Command, EXIT, UsageError } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  printJson,
  rejectPositionals,
  reportApiErrors,
  requestIdArgument,
} from "./client-context.js";
import { approvalProgress, describePendingItem } from "./render-request.js";

const PAGE_SIZE = 200;
// A reviewer's queue longer than this is a problem for another tool; the
// command says so instead of paging forever.
const MAX_PENDING = 1000;

export const pendingCommand: Command = {
  path: ["pending"],
  summary: "List requests waiting for approval (reviewers, auditors)",
  help: `
Usage: writ pending [--json]

Lists the requests waiting for approval, newest first: agent and owner, action,
resource, reason, approvals so far and when each expires. Approve or deny one
with \`writ approve <id>\` or \`writ deny <id> --reason <text>\`.

Options:
  --json    Print { "items": [requests] }

Exit codes: 0 listed (also when empty); 1 server or network error; 2 bad
command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: { json: { type: "boolean", default: false } },
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const client = connectFromEnv(io);
    return reportApiErrors("pending", io, async () => {
      const items: WritRequest[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.list({
          status: "pending",
          limit: PAGE_SIZE,
          ...(cursor !== undefined ? { cursor } : {}),
        });
        items.push(...page.items);
        cursor = page.next;
      } while (cursor !== undefined && items.length < MAX_PENDING);
      const truncated = cursor !== undefined;
      if (values.json) {
        printJson(io, { items, ...(truncated ? { next: cursor } : {}) });
        return EXIT.ok;
      }
      if (items.length === 0) {
        io.stdout("No requests are waiting for approval.\n");
        return EXIT.ok;
      }
      io.stdout(`${items.flatMap((r) => [...describePendingItem(r), ""]).join("\n")}`);
      io.stdout(`${items.length} pending${truncated ? " (more not shown)" : ""}\n`);
      return EXIT.ok;
    });
  },
};

function approvalOutcome(request: WritRequest): string {
  if (request.status === "pending") {
    return `approved ${request.id}: ${approvalProgress(request)} approvals, ${request.pending_approvals} more needed`;
  }
  return `approved ${request.id}: the request is now ${request.status}`;
}

export const approveCommand: Command = {
  path: ["approve"],
  summary: "Approve a pending request (reviewers)",
  help: `
Usage: writ approve <id> [--comment <text>] [--json]

Adds your approval. The request is approved once every group the policy names
has its quorum of distinct people. You cannot approve a request of an agent you
own or that acts on your behalf.

Options:
  --comment <text>   A note recorded with your approval
  --json             Print the request after your review

Exit codes: 0 approval recorded; 1 refused by the server (e.g.
self_approval_forbidden, not_an_approver, request_not_pending) or network
error; 2 bad command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: { comment: { type: "string" }, json: { type: "boolean", default: false } },
        strict: true,
        allowPositionals: true,
      }),
    );
    const id = requestIdArgument(positionals);
    const client = connectFromEnv(io);
    return reportApiErrors("approve", io, async () => {
      const request = await client.approve(id, values.comment);
      if (values.json) printJson(io, request);
      else io.stdout(`${approvalOutcome(request)}\n`);
      return EXIT.ok;
    });
  },
};

/** `<id> --reason <text> [--json]`, the command line of deny and revoke; `why` ends the usage error. */
function idAndReason(args: readonly string[], why: string) {
  const { values, positionals } = parseCommandLine(() =>
    parseArgs({
      args: [...args],
      options: { reason: { type: "string" }, json: { type: "boolean", default: false } },
      strict: true,
      allowPositionals: true,
    }),
  );
  const id = requestIdArgument(positionals);
  const { reason } = values;
  if (reason === undefined || reason.trim() === "") {
    throw new UsageError(`--reason is required: ${why}`);
  }
  return { id, reason, json: values.json };
}

export const denyCommand: Command = {
  path: ["deny"],
  summary: "Deny a pending request, with a reason (reviewers)",
  help: `
Usage: writ deny <id> --reason <text> [--json]

Denies the request; one deny ends it. The reason is recorded and shown to the
agent. A reviewer who approved may still deny while the request is pending.

Options:
  --reason <text>   Why (required)
  --json            Print the request after your review

Exit codes: 0 denied; 1 refused by the server or network error; 2 bad command
line (e.g. no --reason).
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, reason, json } = idAndReason(args, "say why you deny the request");
    const client = connectFromEnv(io);
    return reportApiErrors("deny", io, async () => {
      const request = await client.deny(id, reason);
      if (json) printJson(io, request);
      else io.stdout(`denied ${request.id}: the request is now ${request.status}\n`);
      return EXIT.ok;
    });
  },
};

function revocationOutcome(request: WritRequest): string {
  if (request.credential !== undefined) {
    return `revoked ${request.id}: its credential ${request.credential.id} no longer works`;
  }
  return `revoked ${request.id}: nothing was collected, and nothing will be minted`;
}

export const revokeCommand: Command = {
  path: ["revoke"],
  summary: "End an issued credential or an approved request now (reviewers, auditors)",
  help: `
Usage: writ revoke <id> --reason <text> [--json]

The kill switch: ends an issued credential that has not been used yet (its
token no longer consumes; an AWS session is ended at AWS first), or stops an
approved request before the agent collects it (collecting then answers
request_revoked). The reason is recorded with who revoked it.

Options:
  --reason <text>   Why (required)
  --json            Print the request after the revocation

Exit codes: 0 revoked; 1 refused by the server (e.g. not_revocable: the
request is pending, used or already over; revocation_unavailable: the source
could not be reached and the credential is still issued) or network error; 2
bad command line (e.g. no --reason).
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, reason, json } = idAndReason(args, "say why you revoke it");
    const client = connectFromEnv(io);
    return reportApiErrors("revoke", io, async () => {
      const request = await client.revoke(id, reason);
      if (json) printJson(io, request);
      else io.stdout(`${revocationOutcome(request)}\n`);
      return EXIT.ok;
    });
  },
};
