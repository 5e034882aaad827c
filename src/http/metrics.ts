import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import type { Metrics } from "../ports/metrics.js";

/**
 * Counts every answered request by route template. `routePath(c, -1)` is the
 * last route matched, always a registered template (or the catch-all a
 * middleware was mounted on), so raw paths and ids never become labels.
 */
export function httpMetrics(metrics: Metrics) {
  return createMiddleware(async function httpMetrics(c, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      metrics.observeHttp(
        routePath(c, -1),
        c.req.method,
        c.res.status,
        (performance.now() - started) / 1000,
      );
    }
  });
}

export interface MetricsAppOptions {
  /** The exposition text, rendered per scrape (a primary first gathers its workers'). */
  render: () => string | Promise<string>;
  contentType: string;
  /**
   * SHA-256 (lowercase hex) of the bearer token Prometheus must send; when
   * absent the endpoint is open, so it must listen on loopback only.
   */
  tokenSha256?: string;
}

/** The scheme is case-insensitive (RFC 9110 §11.1); the token is not. */
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([\x21-\x7e]{1,512})$/;

/**
 * The `/metrics` endpoint, on its own listener: never reachable through the
 * public port, and, with a token, only by a scraper holding it.
 */
export function createMetricsApp(options: MetricsAppOptions) {
  const expected =
    options.tokenSha256 === undefined ? undefined : Buffer.from(options.tokenSha256, "hex");
  const app = new Hono();
  app.get("/metrics", async (c) => {
    if (expected !== undefined) {
      const token = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
      const presented =
        token === undefined ? undefined : createHash("sha256").update(token, "utf8").digest();
      if (presented === undefined || !timingSafeEqual(presented, expected)) {
        c.header("WWW-Authenticate", 'Bearer realm="writ-metrics"');
        return c.json(
          {
            error: {
              code: "unauthenticated",
              message: "Send the metrics token as a bearer token.",
            },
          },
          401,
        );
      }
    }
    c.header("Cache-Control", "no-store");
    return c.body(await options.render(), 200, { "Content-Type": options.contentType });
  });
  app.notFound((c) => c.json({ error: { code: "not_found", message: "No such route." } }, 404));
  app.onError((_error, c) =>
    c.json(
      { error: { code: "internal_error", message: "Something went wrong on our side." } },
      500,
    ),
  );
  return app;
}
