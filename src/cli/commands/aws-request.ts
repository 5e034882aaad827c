import type { CreateRequestInput, WritClient, WritCredential } from "../../sdk/client.js";
import { isWritApiError } from "../../sdk/errors.js";
import { type CommandIo, EXIT, UsageError } from "../command.js";
import { CLEANUP_DEADLINE_MS, exitCodeForSignal, type Interruptions } from "./interruptions.js";
import { describeNewRequest, formatDuration, printable } from "./render-request.js";
import {
  DEADLINE_GRACE_MS,
  describeEnding,
  endedWithoutCredential,
  parseContext,
  startWaitIndicator,
  wholeSeconds,
} from "./request.js";

/** The request options `writ exec` and `writ credential-process` share, for parseArgs. */
export const AWS_REQUEST_OPTIONS = {
  action: { type: "string" },
  resource: { type: "string" },
  reason: { type: "string" },
  ticket: { type: "string" },
  context: { type: "string" },
  "on-behalf-of": { type: "string" },
  ttl: { type: "string" },
  timeout: { type: "string" },
} as const;

export const AWS_REQUEST_HELP = `  --action <action>        The AWS action, e.g. s3:GetObject (required)
  --resource <arn>         The one resource, e.g. arn:aws:s3:::reports/q3.csv (required)
  --reason <text>          Why; some policies require one
  --ticket <id>            A ticket reference, e.g. DATA-1234
  --context <json>         A JSON object of facts for policies and reviewers
  --on-behalf-of <person>  The human this agent acts for (they cannot approve it)
  --ttl <seconds>          Wanted credential lifetime (the policy may cap it)
  --timeout <seconds>      Give up waiting for approval after this long (default:
                           the request's approval deadline)`;

interface AwsRequestValues {
  action?: string | undefined;
  resource?: string | undefined;
  reason?: string | undefined;
  ticket?: string | undefined;
  context?: string | undefined;
  "on-behalf-of"?: string | undefined;
  ttl?: string | undefined;
  timeout?: string | undefined;
}

export interface AwsRequestPlan {
  readonly input: CreateRequestInput;
  readonly timeoutSeconds: number | undefined;
}

/** Checks the shared options; every mistake is a usage error, before any call. */
export function awsRequestPlan(values: AwsRequestValues): AwsRequestPlan {
  if (values.action === undefined) throw new UsageError("--action is required");
  if (values.resource === undefined) throw new UsageError("--resource is required");
  return {
    input: {
      action: values.action,
      resource: values.resource,
      credential: "aws",
      ...(values.reason !== undefined ? { reason: values.reason } : {}),
      ...(values.ticket !== undefined ? { ticket: values.ticket } : {}),
      ...(values["on-behalf-of"] !== undefined ? { on_behalf_of: values["on-behalf-of"] } : {}),
      // JSON.parse produced JSON, which is what the schema types context values as.
      ...(values.context !== undefined
        ? { context: parseContext(values.context) as CreateRequestInput["context"] }
        : {}),
      ...(values.ttl !== undefined ? { ttl_seconds: wholeSeconds("--ttl", values.ttl) } : {}),
    },
    timeoutSeconds:
      values.timeout === undefined ? undefined : wholeSeconds("--timeout", values.timeout),
  };
}

export type AwsCredential = Extract<WritCredential, { type: "aws" }>;

/** An approved request's AWS credential, or the exit code for why there is none. */
export type AwsRequestOutcome =
  | { readonly ok: true; readonly id: string; readonly credential: AwsCredential }
  | { readonly ok: false; readonly exitCode: number };

/** Why a call failed, for a message: the API's code, or that it ran out of time. */
function failureReason(error: unknown, deadline: AbortSignal): string {
  if (isWritApiError(error)) return `${error.code}: ${error.message}`;
  if (deadline.aborted) return `no answer within ${formatDuration(CLEANUP_DEADLINE_MS)}`;
  return error instanceof Error ? error.message : "unknown error";
}

/**
 * Withdraws a request nobody will collect (the wait ended), so reviewers are
 * no longer asked to approve it; says how to do it by hand when it fails.
 */
async function withdraw(
  client: WritClient,
  io: CommandIo,
  command: string,
  id: string,
  why: string,
  deadline: AbortSignal,
): Promise<void> {
  try {
    await client.cancel(id, { signal: deadline });
    io.stderr(`writ ${command}: ${why}; ${id} is cancelled, so nobody is asked to approve it\n`);
  } catch (error) {
    io.stderr(
      `writ ${command}: ${why}, and ${id} could not be cancelled (${printable(failureReason(error, deadline))}); withdraw it with \`writ cancel ${id}\`.\n`,
    );
  }
}

/** Tells writ the work is done, which ends the session; a failure is reported, never hidden. */
export async function reportComplete(
  client: WritClient,
  io: CommandIo,
  command: string,
  id: string,
  deadline: AbortSignal,
): Promise<void> {
  try {
    await client.complete(id, { signal: deadline });
    io.stderr(`${id} completed; its AWS session is being ended\n`);
  } catch (error) {
    io.stderr(
      `writ ${command}: could not report ${id} complete (${printable(failureReason(error, deadline))}); its session lasts until it expires. Retry with \`writ complete ${id}\`.\n`,
    );
  }
}

/**
 * Asks for an AWS credential, waits for the decision (saying on stderr who must
 * approve, with a live indicator when stderr is a terminal), and collects it.
 * stdout is left alone: the caller decides what, if anything, goes there.
 *
 * A wait that times out or is interrupted withdraws the request; a signal that
 * arrives while the credential is being collected ends its session at once.
 */
export async function requestAwsCredential(
  client: WritClient,
  io: CommandIo,
  command: string,
  plan: AwsRequestPlan,
  interruptions: Interruptions,
): Promise<AwsRequestOutcome> {
  const created = await client.request(plan.input);
  io.stderr(`${describeNewRequest(created).join("\n")}\n`);
  let decided = created;
  if (created.status === "pending") {
    const timeoutMs =
      plan.timeoutSeconds !== undefined
        ? plan.timeoutSeconds * 1000
        : Math.max(0, Date.parse(created.expires_at) - Date.now()) + DEADLINE_GRACE_MS;
    const indicator = startWaitIndicator(io, created);
    if (!io.stderrIsTty)
      io.stderr(`Waiting up to ${formatDuration(timeoutMs)} for the decision…\n`);
    try {
      decided = await client.waitForDecision(created.id, {
        timeoutMs,
        signal: interruptions.signal,
        onPoll: (r) => indicator.update(r),
      });
    } catch (error) {
      indicator.stop();
      if (isWritApiError(error) && error.code === "wait_timeout") {
        io.stderr(`writ ${command}: ${error.code}: ${printable(error.message)}\n`);
        const deadline = AbortSignal.any([
          interruptions.deadline,
          AbortSignal.timeout(CLEANUP_DEADLINE_MS),
        ]);
        await withdraw(client, io, command, created.id, "stopped waiting", deadline);
        return { ok: false, exitCode: EXIT.failed };
      }
      if (interruptions.received === undefined) throw error;
    } finally {
      indicator.stop();
    }
  }
  const { received } = interruptions;
  if (received !== undefined && (decided.status === "pending" || decided.status === "approved")) {
    await withdraw(
      client,
      io,
      command,
      created.id,
      `${received} received while waiting`,
      interruptions.deadline,
    );
    return { ok: false, exitCode: exitCodeForSignal(received) };
  }
  if (decided.status !== "approved") {
    io.stderr(`${printable(describeEnding(decided))}\n`);
    return {
      ok: false,
      exitCode: endedWithoutCredential(decided) ? EXIT.denied : EXIT.failed,
    };
  }
  const credential = await client.collectCredential(decided.id);
  if (interruptions.received !== undefined) {
    // Asked to stop while the credential was being minted: nothing will use it.
    io.stderr(`writ ${command}: ${interruptions.received} received; not using ${decided.id}\n`);
    await reportComplete(client, io, command, decided.id, interruptions.deadline);
    return { ok: false, exitCode: exitCodeForSignal(interruptions.received) };
  }
  if (credential.type !== "aws") {
    io.stderr(`writ ${command}: the server issued a ${credential.type} credential, not AWS\n`);
    return { ok: false, exitCode: EXIT.failed };
  }
  const approvers = decided.reviews.filter((r) => r.verdict === "approve").map((r) => r.reviewer);
  const by = approvers.length > 0 ? `approved by ${approvers.join(", ")}` : "approved";
  io.stderr(`${printable(`${decided.id} ${by}; AWS session until ${credential.expires_at}`)}\n`);
  return { ok: true, id: decided.id, credential };
}
