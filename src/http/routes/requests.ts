import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Broker } from "../../service/broker.js";
import { type AuthEnv, principalKind } from "../auth.js";
import {
  ApproveBody,
  CreateRequestBody,
  CredentialView,
  DenyBody,
  EmptyBody,
  ErrorResponse,
  GetRequestQuery,
  ListRequestsQuery,
  RequestIdParam,
  RequestList,
  RequestView,
  RevokeBody,
} from "../schemas.js";
import { credentialView, requestView } from "../views.js";

const security = [{ bearer: [] }];
const json = <T>(schema: T) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json(ErrorResponse) });
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
    403: error("policy_denied, wrong_principal_kind"),
    422: error(
      "reason_required, audience_required, unsupported_credential_type, unknown_aws_action, invalid_resource, aws_role_not_configured, session_policy_too_large",
    ),
    429: error("rate_limited: the agent's request limit; retry after Retry-After seconds"),
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
    404: error("not_found"),
    429: error("too_many_waits: the caller's long-polls are all in use; retry after Retry-After"),
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
  responses: { 200: { description: "A page of requests", ...json(RequestList) } },
});

const reviewResponses = {
  200: { description: "The request after the review", ...json(RequestView) },
  403: error("self_approval_forbidden, not_an_approver"),
  409: error("already_reviewed, request_not_pending"),
};

const approveRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/approve",
  tags: ["reviews"],
  summary: "Approve (reviewers in the named groups; never the agent's owner)",
  security,
  middleware: principalKind("reviewer"),
  request: { params: RequestIdParam, ...body(ApproveBody) },
  responses: reviewResponses,
});

const denyRoute = createRoute({
  method: "post",
  path: "/v1/requests/{id}/deny",
  tags: ["reviews"],
  summary: "Deny with a reason; one deny ends the request",
  security,
  middleware: principalKind("reviewer"),
  request: { params: RequestIdParam, ...body(DenyBody) },
  responses: reviewResponses,
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
    409: error("request_not_pending"),
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
    409: error("not_completable"),
    503: error("revocation_unavailable"),
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
    403: error("request_denied, policy_denied (the policies in force now deny it)"),
    409: error("approval_pending"),
    410: error("credential_already_issued, request_expired, request_cancelled, request_revoked"),
    422: error("session_policy_too_large (AWS found the packed policy too large)"),
    502: error("aws_access_denied, aws_error"),
    503: error("aws_throttled, aws_unavailable"),
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
    409: error("not_revocable"),
  },
});

export function requestRoutes(app: OpenAPIHono<AuthEnv>, broker: Broker) {
  app.openapi(createRequestRoute, async (c) => {
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

  app.openapi(getRequestRoute, async (c) => {
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

  app.openapi(listRequestsRoute, async (c) => {
    const principal = c.get("principal");
    const q = c.req.valid("query");
    const page = await broker.list(principal, {
      limit: q.limit,
      ...(q.status !== undefined ? { status: q.status } : {}),
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

  app.openapi(approveRoute, async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const { comment } = c.req.valid("json");
    const { request } = await broker.approve(principal, id, comment, "api");
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(denyRoute, async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const { request } = await broker.deny(principal, id, reason, "api");
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(cancelRoute, async (c) => {
    const principal = c.get("principal");
    const { request } = await broker.cancel(principal, c.req.valid("param").id);
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(completeRoute, async (c) => {
    const principal = c.get("principal");
    const request = await broker.complete(principal, c.req.valid("param").id);
    return c.json(requestView(request, principal), 200);
  });

  app.openapi(credentialRoute, async (c) => {
    const principal = c.get("principal");
    const credential = await broker.collect(principal, c.req.valid("param").id);
    c.header("Cache-Control", "no-store");
    return c.json(credentialView(credential), 200);
  });

  app.openapi(revokeRoute, async (c) => {
    const principal = c.get("principal");
    const { reason } = c.req.valid("json");
    const { request } = await broker.revoke(principal, c.req.valid("param").id, reason);
    return c.json(requestView(request, principal), 200);
  });
}
