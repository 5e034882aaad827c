import type { CreateRequestInput, WritClient, WritCredential } from "../../sdk/client.js";
import { isWritApiError } from "../../sdk/errors.js";
import { type CommandIo, EXIT, UsageError } from "../command.js";
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

/**
 * Asks for an AWS credential, waits for the decision (saying on stderr who must
 * approve, with a live indicator when stderr is a terminal), and collects it.
 * stdout is left alone: the caller decides what, if anything, goes there.
 */
export async function requestAwsCredential(
  client: WritClient,
  io: CommandIo,
  command: string,
  plan: AwsRequestPlan,
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
        onPoll: (r) => indicator.update(r),
      });
    } catch (error) {
      if (isWritApiError(error) && error.code === "wait_timeout") {
        indicator.stop();
        io.stderr(`writ ${command}: ${error.code}: ${printable(error.message)}\n`);
        return { ok: false, exitCode: EXIT.failed };
      }
      throw error;
    } finally {
      indicator.stop();
    }
  }
  if (decided.status !== "approved") {
    io.stderr(`${printable(describeEnding(decided))}\n`);
    return {
      ok: false,
      exitCode: endedWithoutCredential(decided) ? EXIT.denied : EXIT.failed,
    };
  }
  const credential = await client.collectCredential(decided.id);
  if (credential.type !== "aws") {
    io.stderr(`writ ${command}: the server issued a ${credential.type} credential, not AWS\n`);
    return { ok: false, exitCode: EXIT.failed };
  }
  const approvers = decided.reviews.filter((r) => r.verdict === "approve").map((r) => r.reviewer);
  const by = approvers.length > 0 ? `approved by ${approvers.join(", ")}` : "approved";
  io.stderr(`${printable(`${decided.id} ${by}; AWS session until ${credential.expires_at}`)}\n`);
  return { ok: true, id: decided.id, credential };
}
