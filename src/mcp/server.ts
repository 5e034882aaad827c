import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { PERSON_ID } from "../domain/principal.js";
import { MAX_TTL_SECONDS } from "../domain/request.js";
import type { WritClient, WritRequest } from "../sdk/client.js";
import { isWritApiError } from "../sdk/errors.js";

export interface WritMcpServerOptions {
  /** A client holding the agent's own key or token: every tool acts as that agent. */
  client: WritClient;
  /**
   * DANGEROUS. Adds `writ_collect_credential`, which returns the credential
   * itself and so puts it in the model's context, transcripts and logs. Off by
   * default: the agent's runtime collects it out of band.
   */
  returnCredentials?: boolean;
  version?: string;
}

/**
 * The longest a single tool call waits for a decision: under the 60 s request
 * timeout most MCP clients apply, so a wait ends as an answer, not a client error.
 */
export const MAX_TOOL_WAIT_SECONDS = 50;

const REQUEST_ID = z
  .string()
  .regex(
    /^req_[A-Za-z0-9_-]{22}$/,
    "a request id from writ_request_access, like req_3q2-7wEvXv9bE1c8S3iRzA",
  )
  .describe("The request id that writ_request_access returned.");

const RequestSummary = {
  request_id: z.string(),
  status: z
    .string()
    .describe("pending, approved, issued, used, completed, denied, cancelled, expired or revoked"),
  action: z.string(),
  resource: z.string(),
  credential_type: z.string(),
  decision: z.string().describe("The policy's effect: allow, approve (reviewers decide) or deny"),
  policies: z.array(z.string()),
  approver_groups: z.array(z.string()).describe("Groups whose members may approve"),
  approved_by: z.array(z.string()).describe("People who approved so far"),
  pending_approvals: z.number().int(),
  denied_by: z.string().optional(),
  deny_reason: z.string().optional(),
  expires_at: z.string().describe("When the current stage ends"),
  credential_expires_at: z.string().optional(),
  next_step: z.string().describe("What to do next"),
};

type Summary = z.infer<z.ZodObject<typeof RequestSummary>>;

function nextStep(request: WritRequest, returnCredentials: boolean): string {
  const collect = returnCredentials
    ? "call writ_collect_credential to get it"
    : `your runtime collects it out of band (\`writ credential ${request.id}\` or the SDK's collectCredential); it is never shown to you`;
  switch (request.status) {
    case "pending":
      return `Waiting for ${request.pending_approvals} more approval(s). Call writ_check_request with wait_seconds to wait for the decision. Do not perform the action yet.`;
    case "approved":
      return `Approved. The credential is ready: ${collect}. Perform the action, then call writ_complete.`;
    case "issued":
      return "The credential was collected. Perform the action, then call writ_complete as soon as it is done.";
    case "used":
      // A used credential stays used when the action is reported done; only
      // `completed_at` tells the model its writ_complete was taken.
      return request.completed_at !== undefined
        ? "Done: the credential was used and the action was reported complete."
        : "The credential was used. Call writ_complete if you have not reported the action done.";
    case "completed":
      return "Done: the action was reported complete and the credential has ended.";
    case "denied":
      return "Denied. Do not perform the action and do not retry the same request; tell the user why.";
    case "cancelled":
      return "Cancelled. Ask again with writ_request_access if you still need access.";
    case "expired":
      return "Expired before it was used. Ask again with writ_request_access if you still need access.";
    case "revoked":
      return "Revoked by a reviewer or the security team. Do not perform the action; tell the user.";
  }
}

/** What the model sees of a request: ids, decision, people, status. Never a credential. */
export function summarize(request: WritRequest, returnCredentials: boolean): Summary {
  const deny = request.reviews.find((r) => r.verdict === "deny");
  return {
    request_id: request.id,
    status: request.status,
    action: request.action,
    resource: request.resource,
    credential_type: request.credential_type,
    decision: request.decision.effect,
    policies: request.decision.policies,
    approver_groups: request.decision.approvers ?? [],
    approved_by: request.reviews.filter((r) => r.verdict === "approve").map((r) => r.reviewer),
    pending_approvals: request.pending_approvals,
    ...(deny !== undefined ? { denied_by: deny.reviewer } : {}),
    ...(deny?.comment !== undefined ? { deny_reason: deny.comment } : {}),
    expires_at: request.expires_at,
    ...(request.credential !== undefined
      ? { credential_expires_at: request.credential.expires_at }
      : {}),
    next_step: nextStep(request, returnCredentials),
  };
}

function result(summary: Summary): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(summary) }],
    structuredContent: summary,
  };
}

/** A failure the model should read: the API's stable code and its message. */
function failure(error: unknown, signal: AbortSignal): CallToolResult {
  if (signal.aborted) throw signal.reason;
  const body = isWritApiError(error)
    ? {
        code: error.code,
        message: error.message,
        ...(typeof error.details?.request_id === "string"
          ? { request_id: error.details.request_id }
          : {}),
      }
    : error instanceof TypeError
      ? { code: "bad_request", message: error.message }
      : { code: "internal_error", message: "The tool failed unexpectedly." };
  return { content: [{ type: "text", text: JSON.stringify({ error: body }) }], isError: true };
}

const REQUEST_ACCESS_DESCRIPTION = `Ask writ for a short-lived, single-use credential for ONE sensitive action on ONE resource, before you perform it: a data export, a permission or role change, a deploy or infrastructure change, a key rotation, anything touching production data. Call it once per action, right before you need it, with the exact action and resource and an honest reason a human reviewer can judge; never ask for broader access than the task needs, and do not call it for things you can already do.
The result says what happened: "approved" (the credential is ready for your runtime), "pending" (people must approve: call writ_check_request with wait_seconds to wait), or an error with code "policy_denied" (do not perform the action; tell the user). The credential itself is never returned to you.`;

const CHECK_DESCRIPTION = `Check a writ access request, optionally waiting for its decision. Call it after writ_request_access answered "pending", with wait_seconds (up to ${MAX_TOOL_WAIT_SECONDS}) to wait for reviewers; call it again if it is still pending and you can keep waiting. Returns the status, who approved or denied and why, and the next step. Only perform the action once the status is "approved" or "issued".`;

const COMPLETE_DESCRIPTION =
  "Report that the action a writ credential was for is done (whether it succeeded or failed). Call it as soon as you finish, so the credential ends now instead of at its expiry. Safe to call twice.";

const CANCEL_DESCRIPTION =
  "Withdraw a writ access request you no longer need, while it is pending or approved but not yet collected.";

const COLLECT_DESCRIPTION =
  "Returns the credential of an approved writ request, once. Enabled by the operator; use it only right before the action, never repeat or reveal it in your replies, and call writ_complete when done.";

/**
 * The writ MCP server: tools for an agent to request access, wait for the
 * decision, and complete. Credentials stay out of the model's context unless
 * the operator sets `returnCredentials`.
 */
export function createWritMcpServer(options: WritMcpServerOptions): McpServer {
  const { client } = options;
  const returnCredentials = options.returnCredentials === true;
  const server = new McpServer(
    { name: "writ", version: options.version ?? "0.1.0" },
    {
      instructions:
        "writ gives you short-lived, single-use credentials for sensitive actions, approved by policy or by people. Ask with writ_request_access right before such an action, wait with writ_check_request, and report the action done with writ_complete.",
    },
  );

  server.registerTool(
    "writ_request_access",
    {
      title: "Request access for one action",
      description: REQUEST_ACCESS_DESCRIPTION,
      inputSchema: {
        action: z
          .string()
          .regex(
            /^[A-Za-z0-9][A-Za-z0-9_.*:/-]{0,127}$/,
            "an action name like db:export or s3:GetObject",
          )
          .describe("The one action, e.g. db:export, s3:GetObject, iam:AttachRolePolicy"),
        resource: z
          .string()
          .min(1)
          .max(1024)
          .describe("The one resource, e.g. db://prod/customers or an ARN"),
        reason: z
          .string()
          .min(1)
          .max(2000)
          .describe("Why you need it, for the people who review it: the task and its purpose"),
        audience: z
          .string()
          .min(1)
          .max(256)
          .optional()
          .describe("The service that will accept the token (required for jwt credentials)"),
        credential: z.enum(["jwt", "aws"]).optional().describe("jwt (default) or aws"),
        ticket: z
          .string()
          .min(1)
          .max(256)
          .optional()
          .describe("A ticket reference, e.g. DATA-1234"),
        ttl_seconds: z
          .number()
          .int()
          .min(30)
          .max(MAX_TTL_SECONDS)
          .optional()
          .describe("How long the credential should live; the policy may cap it"),
        on_behalf_of: z
          .string()
          .regex(PERSON_ID, "a person's writ id: letters, digits and _ . @ + -")
          .optional()
          .describe(
            "The person you act for, by their writ id, if any: they cannot approve this request",
          ),
      },
      outputSchema: RequestSummary,
      annotations: { destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async (args, extra) => {
      try {
        const request = await client.request({
          action: args.action,
          resource: args.resource,
          reason: args.reason,
          ...(args.audience !== undefined ? { audience: args.audience } : {}),
          ...(args.credential !== undefined ? { credential: args.credential } : {}),
          ...(args.ticket !== undefined ? { ticket: args.ticket } : {}),
          ...(args.ttl_seconds !== undefined ? { ttl_seconds: args.ttl_seconds } : {}),
          ...(args.on_behalf_of !== undefined ? { on_behalf_of: args.on_behalf_of } : {}),
        });
        return result(summarize(request, returnCredentials));
      } catch (error) {
        return failure(error, extra.signal);
      }
    },
  );

  server.registerTool(
    "writ_check_request",
    {
      title: "Check or wait for a request's decision",
      description: CHECK_DESCRIPTION,
      inputSchema: {
        request_id: REQUEST_ID,
        wait_seconds: z
          .number()
          .int()
          .min(0)
          .max(MAX_TOOL_WAIT_SECONDS)
          .optional()
          .describe("Wait up to this long for a pending request to be decided (0: answer at once)"),
      },
      outputSchema: RequestSummary,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (args, extra) => {
      try {
        const waitSeconds = args.wait_seconds ?? 0;
        let request = await client.get(args.request_id, { signal: extra.signal });
        if (request.status === "pending" && waitSeconds > 0) {
          try {
            // One long-poll, answered with the state at its end: when the
            // request is decided, when the wait runs out, or at once when writ
            // is stopping. A loop of them would ask a stopping writ again and
            // again, as fast as it answers, until the wait ran out.
            request = await client.get(args.request_id, {
              waitSeconds,
              whileStatus: "pending",
              signal: extra.signal,
            });
          } catch (error) {
            // The agent's long-polls are all in use: still pending, an answer
            // (whose next step is to call again), not a failure.
            if (!isWritApiError(error) || error.code !== "too_many_waits") throw error;
          }
        }
        return result(summarize(request, returnCredentials));
      } catch (error) {
        return failure(error, extra.signal);
      }
    },
  );

  server.registerTool(
    "writ_complete",
    {
      title: "Report the action done",
      description: COMPLETE_DESCRIPTION,
      inputSchema: { request_id: REQUEST_ID },
      outputSchema: RequestSummary,
      annotations: { destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async (args, extra) => {
      try {
        return result(summarize(await client.complete(args.request_id), returnCredentials));
      } catch (error) {
        return failure(error, extra.signal);
      }
    },
  );

  server.registerTool(
    "writ_cancel_request",
    {
      title: "Withdraw a request",
      description: CANCEL_DESCRIPTION,
      inputSchema: { request_id: REQUEST_ID },
      outputSchema: RequestSummary,
      annotations: { destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async (args, extra) => {
      try {
        return result(summarize(await client.cancel(args.request_id), returnCredentials));
      } catch (error) {
        return failure(error, extra.signal);
      }
    },
  );

  if (returnCredentials) {
    server.registerTool(
      "writ_collect_credential",
      {
        title: "Collect the credential (returns a secret)",
        description: COLLECT_DESCRIPTION,
        inputSchema: { request_id: REQUEST_ID },
        annotations: { destructiveHint: false, idempotentHint: false, openWorldHint: false },
      },
      async (args, extra) => {
        try {
          const credential = await client.collectCredential(args.request_id);
          return { content: [{ type: "text", text: JSON.stringify({ credential }) }] };
        } catch (error) {
          return failure(error, extra.signal);
        }
      },
    );
  }
  return server;
}
