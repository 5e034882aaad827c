import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Broker } from "../../service/broker.js";
import { type AuthEnv, principalKind } from "../auth.js";
import { ConsumeBody, ConsumeView, ErrorResponse, EventList, ListEventsQuery } from "../schemas.js";
import { eventView } from "../views.js";

const security = [{ bearer: [] }];
const json = <T>(schema: T) => ({ content: { "application/json": { schema } } });

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
    401: { description: "token_invalid", ...json(ErrorResponse) },
    403: { description: "audience_mismatch", ...json(ErrorResponse) },
    409: { description: "token_replayed", ...json(ErrorResponse) },
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
    429: {
      description: "too_many_waits: the caller's long-polls are all in use",
      ...json(ErrorResponse),
    },
  },
});

export function tokenRoutes(app: OpenAPIHono<AuthEnv>, broker: Broker) {
  app.openapi(consumeRoute, async (c) => {
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

  app.openapi(eventsRoute, async (c) => {
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
