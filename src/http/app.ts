import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { createConsole } from "../console/console-app.js";
import type { SessionStore } from "../console/sessions.js";
import { type ErrorCode, WritError } from "../domain/errors.js";
import type { AuditIntegrity } from "../ports/audit-integrity.js";
import type { Logger } from "../ports/logger.js";
import type { Metrics } from "../ports/metrics.js";
import type { Broker } from "../service/broker.js";
import { type AuthEnv, principalAuth } from "./auth.js";
import { createDocs } from "./docs.js";
import { ERROR_STATUS } from "./error-status.js";
import { jsonBody } from "./json-body.js";
import { httpMetrics } from "./metrics.js";
import { publicAuditRoutes } from "./routes/audit.js";
import { publicRoutes } from "./routes/health.js";
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
  } else if (code === "token_invalid") {
    // A 401 must carry a challenge (RFC 9110). The caller's own key was good;
    // RFC 6750's `invalid_token` names the token it presented to be consumed.
    c.header("WWW-Authenticate", 'Bearer realm="writ", error="invalid_token"');
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
 * The methods the app's routes take at `path` (with HEAD wherever GET is, as
 * Hono answers it), for a 405's `Allow`. Read on the first miss, once every
 * route is registered; middleware, registered for every method, serves no
 * route of its own and is left out.
 */
function routeMethods(app: { routes: readonly { method: string; path: string }[] }) {
  let routes: { method: string; pattern: RegExp }[] | undefined;
  return (path: string): string[] => {
    routes ??= app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) => ({
        method: route.method,
        pattern: new RegExp(
          `^${route.path
            .split("/")
            .map((part) =>
              part.startsWith(":")
                ? "[^/]+"
                : part === "*"
                  ? ".*"
                  : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
            )
            .join("/")}$`,
        ),
      }));
    const methods = new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
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
  // Read by each route after its key and the key's kind are checked, never before.
  const readBody = jsonBody({ maxBodyBytes });
  // A public key, served without a key like the JWKS: registered before authentication.
  if (options.audit !== undefined) publicAuditRoutes(app, options.audit);
  app.use("/v1/*", principalAuth({ identities: broker.deps.identities }));

  requestRoutes(app, broker, readBody);
  tokenRoutes(app, broker, readBody);
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

  publicRoutes(app, {
    jwks: options.jwks,
    ready: async () =>
      // A replica that is shutting down reports not ready, so the load balancer stops
      // sending it new requests while it drains.
      broker.deps.stopping?.aborted !== true &&
      broker.deps.auditLog.writable() &&
      (await broker.deps.store.ready().catch(() => false)),
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
  app.route("/docs", createDocs({ specUrl: "/openapi.json" }));

  const allowedMethods = routeMethods(app);
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path);
    if (allow.length === 0) return respond(c, "not_found", "No such route.");
    c.header("Allow", allow.join(", "));
    return respond(c, "method_not_allowed", `This route takes ${allow.join(", ")}.`);
  });
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
