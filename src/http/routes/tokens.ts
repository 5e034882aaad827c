import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Broker } from "../../service/broker.js";
import { type AuthEnv, principalKind } from "../auth.js";
import { afterKind, type JsonBodyMiddleware } from "../json-body.js";
import { ConsumeBody, ConsumeView, EventList, ListEventsQuery } from "../schemas.js";
import { eventView } from "../views.js";
import { json, keyedErrors, security } from "./openapi-responses.js";

const consumeRoute = createRoute({
  method: "post",
  path: "/v1/tokens/consume",
  tags: ["credentials"],
  summary: "Consume a writ JWT once (resource servers, for their own audience)",
  security,
  middleware: principalKind("resource_server"),
  request: { body: { required: true, ...json(ConsumeBody) } },
  responses: {
    200: { description: "First use: the token's grant", ...json(ConsumeView) },
    ...keyedErrors(
      {
        401: "token_invalid: the token in the body",
        403: "audience_mismatch",
        409: "token_replayed, conflict",
        429: "rate_limited: the token was already used or has ended, and this resource server is over its limit of refused consumes (nothing was recorded); the token is not accepted later either, Retry-After says when a refusal is recorded again",
      },
      { body: true },
    ),
  },
});

const eventsRoute = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["audit"],
  summary: "Recorded events in stream order (auditors)",
  security,
  middleware: principalKind("auditor"),
  request: { query: ListEventsQuery },
  responses: {
    200: {
      description:
        "A page of events; pass `next` as `after` to read on. A full page has `next`. So does a short or empty page when a filter by `type`, `since` or `until` stopped its bounded scan before the end of the stream: scanned this far, continue. No `next`: the read reached the end.",
      ...json(EventList),
    },
    ...keyedErrors({ 429: "too_many_waits: the caller's long-polls are all in use" }),
  },
});

export function tokenRoutes(
  app: OpenAPIHono<AuthEnv>,
  broker: Broker,
  readBody: JsonBodyMiddleware,
) {
  app.openapi(afterKind(consumeRoute, readBody), async (c) => {
    const principal = c.get("principal");
    const claims = await broker.consume(principal, c.req.valid("json").token);
    return c.json(
      {
        active: true as const,
        sub: claims.sub,
        action: claims.action,
        resource: claims.resource,
        request_id: claims.requestId,
        jti: claims.jti,
        exp: claims.exp,
      },
      200,
    );
  });

  app.openapi(afterKind(eventsRoute, readBody), async (c) => {
    const q = c.req.valid("query");
    const {
      items: events,
      next,
      lastId,
    } = await broker.events(
      c.get("principal"),
      {
        limit: q.limit,
        ...(q.request_id !== undefined ? { requestId: q.request_id } : {}),
        ...(q.type !== undefined ? { type: q.type } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
        ...(q.since !== undefined ? { since: Date.parse(q.since) } : {}),
        ...(q.until !== undefined ? { until: Date.parse(q.until) } : {}),
      },
      { waitSeconds: q.wait ?? 0, signal: c.req.raw.signal },
    );
    return c.json(
      {
        items: events.map(eventView),
        ...(next !== undefined ? { next } : {}),
        ...(lastId !== undefined ? { last_id: lastId } : {}),
      },
      200,
    );
  });
}
