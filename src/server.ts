import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Writ } from "./config/wire.js";
import type { Logger } from "./ports/logger.js";

export interface ServeOptions {
  host: string;
  port: number;
  logger: Logger;
  sweepIntervalSeconds: number;
  shutdownGraceSeconds: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  /** Stops taking connections, lets in-flight requests finish, then closes writ. */
  stop(): Promise<void>;
}

/** Serves a writ over HTTP and runs its expiry sweep until stopped. */
export async function serveWrit(writ: Writ, options: ServeOptions): Promise<RunningServer> {
  const { logger } = options;
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: writ.app.fetch, hostname: options.host, port: options.port }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    writ.broker
      .expireDue()
      .catch((error: unknown) =>
        logger.warn("expiry sweep failed", { error: (error as Error).message }),
      )
      .finally(() => {
        sweeping = false;
      });
  }, options.sweepIntervalSeconds * 1000);
  sweep.unref();

  let stopping: Promise<void> | undefined;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`,
    port,
    stop() {
      stopping ??= (async () => {
        clearInterval(sweep);
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            if ("closeAllConnections" in server) server.closeAllConnections();
            resolve();
          }, options.shutdownGraceSeconds * 1000);
          force.unref();
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
          if ("closeIdleConnections" in server) server.closeIdleConnections();
        });
        await writ.close();
      })();
      return stopping;
    },
  };
}
