import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Writ } from "./config/wire.js";
import { setSecurityHeaders } from "./http/security-headers.js";
import type { Logger } from "./ports/logger.js";

export interface ServeOptions {
  host: string;
  port: number;
  logger: Logger;
  /**
   * Serve the API (default true). A primary process with workers serves no API
   * itself: its workers share the port.
   */
  api?: boolean;
  /** Run the expiry and escalation sweep (default true); workers leave it to their primary. */
  sweep?: boolean;
  sweepIntervalSeconds: number;
  shutdownGraceSeconds: number;
  /** A second listener for `/metrics`, apart from the API's. */
  metrics?: { host: string; port: number; fetch: FetchHandler };
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface RunningServer {
  /** The API's base URL; empty when this process serves no API. */
  readonly url: string;
  readonly port: number;
  /** The metrics listener's base URL, when there is one. */
  readonly metricsUrl: string | undefined;
  /**
   * Reports not ready, ends long-polls (they answer with the current state),
   * stops taking connections, lets in-flight requests finish within the grace
   * period, then closes writ.
   */
  stop(): Promise<void>;
}

function listen(fetch: FetchHandler, host: string, port: number): Promise<ServerType> {
  return new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch, hostname: host, port }, () => resolve(s));
    // Ahead of Hono's listener: every response starts with writ's security headers.
    s.prependListener("request", setSecurityHeaders);
    s.once("error", reject);
  });
}

function baseUrl(host: string, server: ServerType): string {
  const { port } = server.address() as AddressInfo;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** How often a draining listener closes connections that have gone idle. */
const IDLE_SWEEP_MS = 25;

/**
 * Closes a listener, forcing its connections shut once `graceMs` has passed.
 * Keep-alive connections whose request finishes during the drain would
 * otherwise linger until their idle timeout: they are closed as they go idle.
 */
function closeGracefully(server: ServerType, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const idle = setInterval(() => {
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    }, IDLE_SWEEP_MS);
    idle.unref();
    const force = setTimeout(() => {
      if ("closeAllConnections" in server) server.closeAllConnections();
      clearInterval(idle);
      resolve();
    }, graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      clearInterval(idle);
      resolve();
    });
    if ("closeIdleConnections" in server) server.closeIdleConnections();
  });
}

/** Serves a writ over HTTP and runs its expiry and escalation sweep until stopped. */
export async function serveWrit(writ: Writ, options: ServeOptions): Promise<RunningServer> {
  const { logger } = options;
  const server =
    options.api === false ? undefined : await listen(writ.app.fetch, options.host, options.port);
  const port = server === undefined ? 0 : (server.address() as AddressInfo).port;
  let metricsServer: ServerType | undefined;
  try {
    if (options.metrics !== undefined) {
      metricsServer = await listen(
        options.metrics.fetch,
        options.metrics.host,
        options.metrics.port,
      );
    }
  } catch (error) {
    if (server !== undefined) await closeGracefully(server, 0);
    throw error;
  }
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping || options.sweep === false) return;
    sweeping = true;
    // Expiry first: a request past its approval deadline expires rather than escalates.
    writ.broker
      .expireDue()
      .catch((error: unknown) =>
        logger.warn("expiry sweep failed", { error: (error as Error).message }),
      )
      .then(() => writ.broker.escalateDue())
      .catch((error: unknown) =>
        logger.warn("escalation sweep failed", { error: (error as Error).message }),
      )
      .finally(() => {
        sweeping = false;
      });
  }, options.sweepIntervalSeconds * 1000);
  sweep.unref();

  let stopping: Promise<void> | undefined;
  return {
    url: server === undefined ? "" : baseUrl(options.host, server),
    port,
    metricsUrl:
      metricsServer === undefined || options.metrics === undefined
        ? undefined
        : baseUrl(options.metrics.host, metricsServer),
    stop() {
      stopping ??= (async () => {
        // First: /readyz turns 503 and long-polls answer now, so nothing in
        // flight waits out the grace period for a status change.
        writ.beginShutdown();
        clearInterval(sweep);
        if (server !== undefined) {
          await closeGracefully(server, options.shutdownGraceSeconds * 1000);
        }
        if (metricsServer !== undefined) await closeGracefully(metricsServer, 0);
        await writ.close();
      })();
      return stopping;
    },
  };
}
