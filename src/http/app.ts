import { swaggerUI } from "@hono/swagger-ui";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { createConsole } from "../console/console-app.js";
import type { SessionStore } from "../console/sessions.js";
import { type ErrorCode, WritError } from "../domain/errors.js";
import { jsonShapeProblem, unrecordableJson } from "../domain/json.js";
import type { AuditIntegrity } from "../ports/audit-integrity.js";
import type { Logger } from "../ports/logger.js";
import type { Metrics } from "../ports/metrics.js";
import type { Broker } from "../service/broker.js";
import { type AuthEnv, principalAuth } from "./auth.js";
import { ERROR_STATUS } from "./error-status.js";
import { httpMetrics } from "./metrics.js";
import { publicAuditRoutes } from "./routes/audit.js";
import { type McpRouteOptions, mcpRoutes } from "./routes/mcp.js";
import { requestRoutes } from "./routes/requests.js";
import { tokenRoutes } from "./routes/tokens.js";

export interface AppOptions {
  broker: Broker;
  /** The public JWKS served at `/.well-known/jwks.json`. */
  jwks: () => { keys: object[] };
  logger: Logger;
  /** Largest accepted request body (default 64 KiB). */
  maxBodyBytes?: number;
  /** The MCP server at `/mcp` (default: served, credentials never returned). */
  mcp?: McpRouteOptions;
  version?: string;
  /**
   * Routes outside `/v1` that authenticate their callers themselves, each with
   * its own body limit: the Slack receiver at `/slack/events` verifies Slack's
   * signature instead of a bearer key.
   */
  extraRoutes?: readonly ((app: OpenAPIHono<AuthEnv>) => void)[];
  /** Counts requests by route template and status, when metrics are on. */
  metrics?: Metrics;
  /** The audit log's checkpoint key and integrity checks (`/v1/audit/checkpoint-key`, console). */
  audit?: AuditIntegrity;
  /** The web console at `/console`; absent, it is not served. */
  console?: {
    idleTimeoutSeconds: number;
    sessionMaxSeconds: number;
    secureCookies: boolean;
    /** Where console sessions live (default: this process's memory). */
    sessions?: SessionStore;
  };
}

/** Whether the request came from a socket through `@hono/node-server` (not `app.request()`). */
function servedByNode(c: Context): boolean {
  const env: unknown = c.env;
  return typeof env === "object" && env !== null && "incoming" in env;
}

/** Deepest JSON nesting any request body may have; schemas set tighter limits per field. */
const MAX_BODY_DEPTH = 8;

export function errorBody(
  code: ErrorCode,
  message: string,
  details?: Readonly<Record<string, unknown>>,
) {
  return { error: { code, message, ...(details !== undefined ? { details } : {}) } };
}

function respond(
  c: Context,
  code: ErrorCode,
  message: string,
  details?: Readonly<Record<string, unknown>>,
) {
  if (code === "unauthenticated" || (code.startsWith("oidc_") && ERROR_STATUS[code] === 401)) {
    c.header("WWW-Authenticate", 'Bearer realm="writ"');
  }
  if (ERROR_STATUS[code] === 429 && typeof details?.retry_after_seconds === "number") {
    c.header("Retry-After", String(details.retry_after_seconds));
  }
  return c.json(errorBody(code, message, details), ERROR_STATUS[code]);
}

function describeZodError(error: ZodError): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return parts.join("; ").slice(0, 500);
}

/**
 * The HTTP API. It never listens: `main` serves it, tests call `app.request()`.
 */
export function createApp(options: AppOptions) {
  const { broker, logger } = options;
  const app = new OpenAPIHono<AuthEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return respond(c, "validation_failed", describeZodError(result.error));
    },
  });

  if (options.metrics !== undefined) app.use(httpMetrics(options.metrics));
  app.use(async function requestLog(c, next) {
    const started = performance.now();
    await next();
    logger.info("http", {
      method: c.req.method,
      route: c.req.routePath,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024;
  const tooLarge = (c: Context) =>
    respond(c, "payload_too_large", "The request body is too large.");
  // A body with a Content-Length is checked by that header alone: Node's parser
  // never delivers more bytes than it declares, and the body is then read straight
  // from the socket, without a WHATWG stream per call. Any other body (chunked, or
  // a request built in process) is counted by Hono's limiter as it streams in.
  const streamingLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  app.use("/v1/*", async function requireJson(c, next) {
    const length = c.req.header("content-length");
    const chunked = c.req.header("transfer-encoding") !== undefined;
    // Over HTTP/1.1 a request with neither header has no body (RFC 9112, 6.3).
    const empty = !chunked && length === undefined && servedByNode(c);
    if (length !== undefined && !chunked) {
      if (Number(length) > maxBodyBytes) return tooLarge(c);
    } else if (!empty) {
      let passed = false;
      const limited = await streamingLimit(c, async () => {
        passed = true;
      });
      if (!passed) return limited;
    }
    const hasBody = chunked || (length !== undefined && length !== "0");
    const type = c.req.header("content-type");
    if (c.req.method !== "POST") return next();
    if (!hasBody && type === undefined) {
      // Saying the body is empty spares the route's media-type check from building
      // a WHATWG request only to find nothing in it.
      if (empty) Object.defineProperty(c.req.raw, "body", { value: null });
      return next();
    }
    if (!/^application\/json\s*(;|$)/i.test(type ?? "")) {
      return respond(c, "unsupported_media_type", "Send the body as application/json.");
    }
    // Parsed once here (Hono caches the text for the validators). Bounding the depth
    // first keeps hostile bodies thousands of levels deep away from the
    // recursive schema validation, which would otherwise exhaust the stack; a
    // `__proto__` key anywhere is refused here because schemas drop it silently.
    const text = await c.req.text();
    if (text.length > 0) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return respond(c, "invalid_json", "The request body is not valid JSON.");
      }
      const problem = jsonShapeProblem(body, MAX_BODY_DEPTH);
      if (problem === "too_deep") {
        return respond(
          c,
          "validation_failed",
          `The body nests deeper than ${MAX_BODY_DEPTH} levels.`,
        );
      }
      if (problem === "proto_key") {
        return respond(
          c,
          "validation_failed",
          'The body has a key named "__proto__", which writ does not accept.',
        );
      }
      // JSON text can spell what the audit log cannot record exactly ("\ud800",
      // 1e400): refused here, before any of it reaches a record.
      const unrecordable = unrecordableJson(body);
      if (unrecordable !== undefined) {
        return respond(c, "validation_failed", `The body has ${unrecordable}.`);
      }
    }
    await next();
  });
  // A public key, served without a key like the JWKS: registered before authentication.
  if (options.audit !== undefined) publicAuditRoutes(app, options.audit);
  app.use("/v1/*", principalAuth({ identities: broker.deps.identities }));

  requestRoutes(app, broker);
  tokenRoutes(app, broker);
  for (const mount of options.extraRoutes ?? []) mount(app);
  if (options.console !== undefined) {
    app.route(
      "/console",
      createConsole({ broker, audit: options.audit, logger, ...options.console }),
    );
  }
  mcpRoutes(app, broker.deps.identities, {
    ...(options.mcp ?? { enabled: true, returnCredentials: false }),
    maxBodyBytes,
    version: options.version ?? "0.1.0",
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    // A replica that is shutting down reports not ready, so the load balancer stops
    // sending it new requests while it drains.
    const ready =
      broker.deps.stopping?.aborted !== true &&
      broker.deps.auditLog.writable() &&
      (await broker.deps.store.ready().catch(() => false));
    return c.json({ status: ready ? "ready" : "not_ready" }, ready ? 200 : 503);
  });
  app.get("/.well-known/jwks.json", (c) => {
    c.header("Cache-Control", "public, max-age=300");
    return c.json(options.jwks());
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A writ key: agent, reviewer, auditor or resource server.",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "writ",
      version: options.version ?? "0.1.0",
      description: "Just-in-time, single-use credentials for AI agents.",
    },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json" }));

  app.notFound((c) => respond(c, "not_found", "No such route."));
  app.onError((error, c) => {
    if (error instanceof WritError) return respond(c, error.code, error.message, error.details);
    if (error instanceof HTTPException) {
      if (error.status === 413)
        return respond(c, "payload_too_large", "The request body is too large.");
      if (error.status === 400 && /json/i.test(error.message)) {
        return respond(c, "invalid_json", "The request body is not valid JSON.");
      }
      if (error.status < 500) return respond(c, "bad_request", "The request could not be read.");
    }
    logger.error("unhandled error", { route: c.req.routePath, error: (error as Error).name });
    return respond(c, "internal_error", "Something went wrong on our side.");
  });
  return app;
}

export type WritApp = ReturnType<typeof createApp>;
