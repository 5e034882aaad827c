import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Broker } from "../../service/broker.js";
import { type AuthEnv, principalKind } from "../auth.js";
import { afterKind, type JsonBodyMiddleware } from "../json-body.js";
import {
  ApproveBody,
  CreateRequestBody,
  CredentialView,
  DenyBody,
  EmptyBody,
  GetRequestQuery,
  ListRequestsQuery,
  RequestIdParam,
  RequestList,
  RequestView,
  ReviewAfterBody,
  RevokeBody,
} from "../schemas.js";
import { credentialView, requestView } from "../views.js";
import { json, keyedErrors, security } from "./openapi-responses.js";

const body = <T>(schema: T) => ({ body: { required: true, ...json(schema) } });

const createRequestRoute = createRoute({
  method: "post",
  path: "/v1/requests",
  tags: ["requests"],
  summary: "Ask for a credential for one action on one resource (agents)",
  security,
  middleware: principalKind("agent"),
  request: body(CreateRequestBody),
  responses: {
    201: { description: "Approved at once, or waiting for reviewers", ...json(RequestView) },
    ...keyedErrors(
      {
        403: "policy_denied, on_behalf_of_not_allowed (not a person the agent's acts_for names)",
        422: "reason_required, audience_required, unsupported_credential_type, unknown_aws_action, invalid_resource, aws_role_not_configured, session_policy_too_large",
        429: "rate_limited: the agent's request limit; retry after Retry-After seconds",
      },
      { body: true },
    ),
  },
});

const getRequestRoute = createRoute({
  method: "get",
  path: "/v1/requests/{id}",
  tags: ["requests"],
  summary: "Read a request; `wait` long-polls for a status change",
  security,
  middleware: principalKind("agent", "reviewer", "auditor"),
  request: { params: RequestIdParam, query: GetRequestQuery },
  responses: {
    200: { description: "The request", ...json(RequestView) },
    ...keyedErrors(
      { 429: "too_many_waits: the caller's long-polls are all in use; retry after Retry-After" },
      { id: true },
    ),
  },
});

const listRequestsRoute = createRoute({
  method: "get",
  path: "/v1/requests",
  tags: ["requests"],
  summary: "List requests, newest first (reviewers, auditors)",
  security,
  middleware: principalKind("reviewer", "auditor"),
  request: { query: ListRequestsQuery },
  responses: {
    200: { description: "A page of requests", ...json(RequestList) },
    ...keyedErrors({}),
  },
});

/**
 * A review's answers. Each person approves once (`already_reviewed`), but a
 * reviewer who approved may still deny while the request is pending.
 */
const reviewResponses = (conflicts: string) => ({
  200: { description: "The request after the review", ...json(RequestView) },
  ...keyedErrors(
    { 403: "self_approval_forbidden, not_an_approver", 409: conflicts },
    { id: true, body: true },
  ),
});

const approveRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/approve",
  tags: ["reviews"],
  summary: "Approve (reviewers in the named groups; never the agent's owner)",
  security,
  middleware: principalKind("reviewer"),
  request: { params: RequestIdParam, ...body(ApproveBody) },
  responses: reviewResponses("already_reviewed, request_not_pending, conflict"),
});

const denyRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/deny",
  tags: ["reviews"],
  summary: "Deny with a reason; one deny ends the request",
  security,
  middleware: principalKind("reviewer"),
  request: { params: RequestIdParam, ...body(DenyBody) },
  responses: reviewResponses("request_not_pending, conflict"),
});

const reviewAfterRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/review-after",
  tags: ["reviews"],
  summary:
    "Review an issued request after the fact: `ok`, or a `concern` with a note (members of its `@review_after` groups; never the agent's owner)",
  security,
  middleware: principalKind("reviewer"),
  request: { params: RequestIdParam, ...body(ReviewAfterBody) },
  responses: reviewResponses("already_reviewed_after, not_reviewable_after, conflict"),
});

const cancelRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/cancel",
  tags: ["requests"],
  summary: "Withdraw a pending or uncollected request (the requesting agent)",
  security,
  middleware: principalKind("agent"),
  request: { params: RequestIdParam, body: { required: false, ...json(EmptyBody) } },
  responses: {
    200: { description: "The cancelled request", ...json(RequestView) },
    ...keyedErrors({ 409: "request_not_pending, conflict" }, { id: true, body: true }),
  },
});

const completeRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/complete",
  tags: ["credentials"],
  summary: "Report the action done; an unused credential ends now (the requesting agent)",
  security,
  middleware: principalKind("agent"),
  request: { params: RequestIdParam, body: { required: false, ...json(EmptyBody) } },
  responses: {
    200: {
      description: "The request, completed (or used, with the report recorded)",
      ...json(RequestView),
    },
    ...keyedErrors(
      { 409: "not_completable, conflict", 503: "revocation_unavailable" },
      { id: true, body: true },
    ),
  },
});

const credentialRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/credential",
  tags: ["credentials"],
  summary: "Mint and collect the credential, once (the requesting agent)",
  security,
  middleware: principalKind("agent"),
  request: { params: RequestIdParam, body: { required: false, ...json(EmptyBody) } },
  responses: {
    200: { description: "The credential; it is never shown again", ...json(CredentialView) },
    ...keyedErrors(
      {
        403: "request_denied, policy_denied (the policies in force now deny it), on_behalf_of_not_allowed (the agent's acts_for no longer names the person)",
        409: "approval_pending, conflict",
        410: "credential_already_issued, request_expired, request_cancelled, request_revoked",
        422: "session_policy_too_large (AWS found the packed policy too large)",
        502: "aws_access_denied, aws_error",
        503: "aws_throttled, aws_unavailable",
      },
      { id: true, body: true },
    ),
  },
});

const revokeRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/revoke",
  tags: ["credentials"],
  summary:
    "End an issued, unused credential now, or an approved request before it is collected (reviewers, auditors)",
  security,
  middleware: principalKind("reviewer", "auditor"),
  request: { params: RequestIdParam, ...body(RevokeBody) },
  responses: {
    200: { description: "The request, now revoked", ...json(RequestView) },
    ...keyedErrors(
      { 409: "not_revocable, conflict", 503: "revocation_unavailable" },
      { id: true, body: true },
    ),
  },
});

export function requestRoutes(
  app: OpenAPIHono<AuthEnv>,
  broker: Broker,
  readBody: JsonBodyMiddleware,
) {
  app.openapi(afterKind(createRequestRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const b = c.req.valid("json");
    const request = await broker.request(principal, {
      action: b.action,
      resource: b.resource,
      credentialType: b.credential,
      context: b.context,
      ...(b.audience !== undefined ? { audience: b.audience } : {}),
      ...(b.reason !== undefined ? { reason: b.reason } : {}),
      ...(b.ticket !== undefined ? { ticket: b.ticket } : {}),
      ...(b.on_behalf_of !== undefined ? { onBehalfOf: b.on_behalf_of } : {}),
      ...(b.ttl_seconds !== undefined ? { ttlSeconds: b.ttl_seconds } : {}),
    });
    c.header("Location", `/v1/requests/${request.id}`);
    return c.json(requestView(request, principal), 201);
  });

  app.openapi(afterKind(getRequestRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const query = c.req.valid("query");
    const request = await broker.get(principal, id, {
      waitSeconds: query.wait ?? 0,
      signal: c.req.raw.signal,
      ...(query.while !== undefined ? { whileStatus: query.while } : {}),
    });
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(listRequestsRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const q = c.req.valid("query");
    const page = await broker.list(principal, {
      limit: q.limit,
      ...(q.status !== undefined ? { status: q.status } : {}),
      ...(q.awaiting !== undefined ? { awaiting: q.awaiting } : {}),
      ...(q.agent !== undefined ? { agentId: q.agent } : {}),
      ...(q.action !== undefined ? { action: q.action } : {}),
      ...(q.since !== undefined ? { since: Date.parse(q.since) } : {}),
      ...(q.until !== undefined ? { until: Date.parse(q.until) } : {}),
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
    });
    return c.json(
      {
        items: page.items.map((r) => requestView(r, principal)),
        ...(page.next !== undefined ? { next: page.next } : {}),
      },
      200,
    );
  });

  app.openapi(afterKind(approveRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const { comment } = c.req.valid("json");
    const { request } = await broker.approve(principal, id, comment, "api");
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(denyRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const { request } = await broker.deny(principal, id, reason, "api");
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(reviewAfterRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const { verdict, note } = c.req.valid("json");
    const { request } = await broker.reviewAfter(principal, id, verdict, note, "api");
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(cancelRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { request } = await broker.cancel(principal, c.req.valid("param").id);
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(completeRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const request = await broker.complete(principal, c.req.valid("param").id);
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(afterKind(credentialRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const credential = await broker.collect(principal, c.req.valid("param").id);
    c.header("Cache-Control", "no-store");
    return c.json(credentialView(credential), 200);
  });

  app.openapi(afterKind(revokeRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const { reason } = c.req.valid("json");
    const { request } = await broker.revoke(principal, c.req.valid("param").id, reason);
    return c.json(requestView(request, principal), 200);
  });
}
