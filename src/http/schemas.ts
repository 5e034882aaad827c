import { z } from "@hono/zod-openapi";
import { EVENT_TYPES } from "../domain/events.js";
import { nestsWithin } from "../domain/json.js";
import { PERSON_ID } from "../domain/principal.js";
import { MAX_TTL_SECONDS, REQUEST_STATUSES } from "../domain/request.js";
import { EVENT_ID, eventIdForm } from "../domain/stream-id.js";
import { hasVisibleText, PRINTABLE, PRINTABLE_MESSAGE } from "../domain/text.js";

/**
 * The API's schemas: they validate input and generate `/openapi.json`, so the
 * documentation cannot drift from what the server accepts.
 */

const ACTION = /^[A-Za-z0-9][A-Za-z0-9_.*:/-]{0,127}$/;

/**
 * Printable text of at most `max` characters. The published pattern is set by
 * hand: the generator writes a regular expression as its literal less the
 * slashes, which would leave PRINTABLE's `u` flag in the pattern ("…$/u") and
 * match nothing. JSON Schema patterns carry no flags and are Unicode-aware
 * ECMA-262, so PRINTABLE's source alone means what the server accepts.
 */
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(PRINTABLE, PRINTABLE_MESSAGE)
    .openapi({ pattern: PRINTABLE.source });

const REQUEST_ID = z.string().regex(/^req_[A-Za-z0-9_-]{22}$/, "not a request id");

export const RequestIdParam = z.object({
  id: REQUEST_ID.openapi({
    param: { name: "id", in: "path" },
    example: "req_3q2-7wEvXv9bE1c8S3iRzA",
  }),
});

const MAX_CONTEXT_DEPTH = 5;

const ContextValue = z.json().openapi("JsonValue");

export const CreateRequestBody = z
  .strictObject({
    action: z
      .string()
      .regex(ACTION, "an action name like s3:GetObject or db:export")
      .openapi({ example: "db:export" }),
    resource: text(1024).openapi({ example: "db://prod/customers" }),
    credential: z.enum(["jwt", "aws"]).default("jwt"),
    audience: text(256).optional().openapi({ example: "billing-api" }),
    reason: text(2000)
      .optional()
      .openapi({ example: "Quarterly churn analysis, ticket DATA-1234" }),
    ticket: text(256).optional().openapi({ example: "DATA-1234" }),
    // A person's id, as configured reviewers and owners have them: an
    // `on_behalf_of` that only looks like a reviewer's id (a trailing space, an
    // invisible character) would let that reviewer approve a request made for them.
    on_behalf_of: z
      .string()
      .regex(PERSON_ID, "a person id: letters, digits and _ . @ + - (at most 128)")
      .optional()
      .openapi({
        description:
          "The human this agent acts for, by their writ id; they cannot approve it. When the agent has acts_for configured, one of those people (else on_behalf_of_not_allowed).",
        example: "alice",
      }),
    context: z
      .record(z.string().min(1).max(128).regex(PRINTABLE, PRINTABLE_MESSAGE), ContextValue)
      .default({})
      .refine(
        (v) => nestsWithin(v, MAX_CONTEXT_DEPTH),
        `nests too deeply (at most ${MAX_CONTEXT_DEPTH} levels)`,
      )
      .refine((v) => JSON.stringify(v).length <= 16_384, "is larger than 16 KiB")
      .openapi({
        description: "Free-form facts for policies and reviewers, e.g. data classification.",
        example: { rows: 12000, classification: "pii" },
      }),
    ttl_seconds: z
      .number()
      .int()
      .min(30)
      .max(MAX_TTL_SECONDS)
      .optional()
      .openapi({ description: "Wanted credential lifetime; capped by the policy." }),
  })
  .openapi("CreateRequest");

/** Calls that take no input accept no body, `{}`, and nothing else. */
export const EmptyBody = z.strictObject({}).openapi("Empty");
export const ApproveBody = z.strictObject({ comment: text(2000).optional() }).openapi("Approve");
/** A reason people will read: blank or invisible text is refused, as in every other channel. */
const reason = text(2000).refine(hasVisibleText, "must say something, not only blank space");
export const DenyBody = z.strictObject({ reason }).openapi("Deny");
export const RevokeBody = z.strictObject({ reason }).openapi("Revoke");
export const ReviewAfterBody = z
  .strictObject({
    verdict: z.enum(["ok", "concern"]),
    note: reason.optional().openapi({ description: "Required for `concern`: what is wrong." }),
  })
  .refine((b) => b.verdict !== "concern" || b.note !== undefined, {
    message: "a concern needs a note saying what is wrong",
    path: ["note"],
  })
  .openapi("ReviewAfter");
export const ConsumeBody = z
  .strictObject({ token: z.string().min(1).max(8192) })
  .openapi("Consume");

/**
 * A whole number in a query string: decimal digits only. `Number()` alone
 * would also take `0x3c`, `1e2`, ` 7` and an empty value (as 0). Published as
 * the integer it stands for.
 */
function queryInteger(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,9}$/, "must be a whole number in decimal digits")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .openapi({ type: "integer", minimum: min, maximum: max });
}

/** A long-poll's length, in seconds. */
const waitSeconds = queryInteger(0, 60).optional();

export const GetRequestQuery = z.strictObject({
  while: z.enum(REQUEST_STATUSES).optional().openapi({
    description:
      "With `wait`: keep waiting while the status is this one (default: the status at the call). Pass the status you last saw so a change between two polls is never missed.",
  }),
  wait: waitSeconds.openapi({
    description: "Long-poll up to this many seconds for a status change.",
  }),
});

export const ListRequestsQuery = z
  .strictObject({
    status: z.enum(REQUEST_STATUSES).optional(),
    awaiting: z.enum(["review_after"]).optional().openapi({
      description:
        "`review_after`: only requests whose credential was issued and that wait for their review after the fact. Not combined with `status`.",
    }),
    agent: text(256).optional(),
    action: z.string().regex(ACTION).optional(),
    since: z.iso.datetime().optional(),
    until: z.iso.datetime().optional(),
    limit: queryInteger(1, 500).default(50),
    // Opaque to callers: digits of a list position (the Redis store's are 27 long).
    cursor: z
      .string()
      .regex(/^\d{1,32}$/)
      .optional(),
  })
  // Each is read from an index of its own; the store does not intersect them.
  .refine((q) => q.status === undefined || q.awaiting === undefined, {
    message: "pass status or awaiting, not both",
    path: ["awaiting"],
  });

const NOT_AN_EVENT_ID = "not an event id: pass an id, next or last_id from an earlier answer";

export const ListEventsQuery = z.strictObject({
  request_id: REQUEST_ID.optional(),
  type: z.enum(EVENT_TYPES).optional(),
  after: z
    .string()
    // The pattern checks the shape (and stops there when it fails, so the
    // message is said once); the bounds of each part need a look at the value.
    .regex(EVENT_ID, { message: NOT_AN_EVENT_ID, abort: true })
    .refine((id) => eventIdForm(id) !== undefined, NOT_AN_EVENT_ID)
    .optional()
    .openapi({
      description:
        "Only events after this one: an `id`, `next` or `last_id` from an earlier answer. Anything else is refused (`400 validation_failed`).",
      example: "1768467600000-3",
    }),
  since: z.iso.datetime().optional().openapi({ description: "Only events at or after this time." }),
  until: z.iso.datetime().optional().openapi({ description: "Only events before this time." }),
  wait: waitSeconds.openapi({
    description:
      "Long-poll: when nothing matches yet, wait up to this many seconds for an event that does.",
  }),
  limit: queryInteger(1, 1000).default(100),
});

export const ErrorResponse = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "policy_denied" }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .openapi("Error");

const Requirement = z.object({ groups: z.array(z.string()), quorum: z.number().int() });

export const DecisionView = z
  .object({
    effect: z.enum(["allow", "approve", "deny"]),
    policies: z.array(z.string()),
    approvers: z.array(z.string()).optional(),
    quorum: z.number().int().optional(),
    requirements: z.array(Requirement),
    ttl_seconds: z.number().int(),
    reason_required: z.boolean(),
    escalation: z
      .object({ after_seconds: z.number().int(), groups: z.array(z.string()) })
      .optional()
      .openapi({
        description:
          "Whom writ notifies if the request is still pending `after_seconds` after it was created. It never changes who may approve.",
      }),
    notify: z.array(z.string()).optional().openapi({
      description: "Groups told once the request is decided (`@notify`); they do not approve.",
    }),
  })
  .openapi("Decision");

export const RequestView = z
  .object({
    id: z.string(),
    status: z.enum(REQUEST_STATUSES),
    agent: z.string(),
    owner: z.string(),
    on_behalf_of: z.string().optional(),
    action: z.string(),
    resource: z.string(),
    credential_type: z.enum(["jwt", "aws"]),
    audience: z.string().optional(),
    reason: z.string().optional(),
    ticket: z.string().optional(),
    context: z.record(z.string(), z.unknown()),
    masked_fields: z.array(z.string()),
    ttl_seconds: z.number().int(),
    decision: DecisionView,
    reviews: z.array(
      z.object({
        reviewer: z.string(),
        verdict: z.enum(["approve", "deny"]),
        comment: z.string().optional(),
        channel: z.string(),
        at: z.string(),
      }),
    ),
    pending_approvals: z
      .number()
      .int()
      .openapi({ description: "Approvals still needed (0 once approved)." }),
    credential: z
      .object({
        type: z.enum(["jwt", "aws"]),
        id: z.string(),
        issued_at: z.string(),
        expires_at: z.string(),
      })
      .optional(),
    completed_at: z
      .string()
      .optional()
      .openapi({ description: "When the agent reported its action done." }),
    review_after: z
      .object({
        groups: z.array(z.string()),
        review: z
          .object({
            reviewer: z.string(),
            verdict: z.enum(["ok", "concern"]),
            note: z.string().optional(),
            channel: z.string(),
            at: z.string(),
          })
          .optional(),
      })
      .optional()
      .openapi({
        description:
          "Set when the policy asks for a review after the fact (`@review_after`): the groups one of whose members must review it once a credential is issued, and the review once recorded.",
      }),
    escalated_at: z.string().optional().openapi({
      description:
        "When the request was escalated: still pending at the time its decision's escalation named.",
    }),
    created_at: z.string(),
    updated_at: z.string(),
    expires_at: z.string(),
  })
  .openapi("Request");

export const RequestList = z
  .object({ items: z.array(RequestView), next: z.string().optional() })
  .openapi("RequestList");

export const CredentialView = z
  .object({
    credential: z.union([
      z.object({ type: z.literal("jwt"), token: z.string(), expires_at: z.string() }),
      z.object({
        type: z.literal("aws"),
        access_key_id: z.string(),
        secret_access_key: z.string(),
        session_token: z.string(),
        expires_at: z.string(),
      }),
    ]),
  })
  .openapi("Credential");

export const ConsumeView = z
  .object({
    active: z.literal(true),
    sub: z.string(),
    action: z.string(),
    resource: z.string(),
    request_id: z.string(),
    jti: z.string(),
    exp: z.number().int(),
  })
  .openapi("ConsumeResult");

export const EventView = z
  .object({
    id: z.string(),
    type: z.enum(EVENT_TYPES),
    request_id: z.string(),
    actor: z.object({ kind: z.string(), id: z.string() }),
    time: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi("Event");

export const EventList = z
  .object({
    items: z.array(EventView),
    next: z.string().optional().openapi({
      description:
        "Continue with `after=next`: the page is full, or a filter by `type`, `since` or `until` stopped its bounded scan here. A short or empty page with `next` means: scanned this far, continue. Absent: the read reached the end of the stream.",
    }),
    last_id: z.string().optional().openapi({
      description:
        "The newest event id in the stream when the call was answered. When `items` is empty and there is no `next`, continue with `after=last_id`: nothing up to it matched.",
    }),
  })
  .openapi("EventList");
