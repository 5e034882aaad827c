import type { JwtKeyRing } from "../../adapters/jwt-keys.js";
import type { KeyedPrincipal } from "../../adapters/key-identity.js";
import {
  createPrometheusMetrics,
  PROMETHEUS_CONTENT_TYPE,
  type PrometheusMetrics,
} from "../../adapters/prometheus-metrics.js";
import { readEnv } from "../../config/load.js";
import { withSlackEnv } from "../../config/notify-config.js";
import { storeKind } from "../../config/redis-settings.js";
import type { WritConfig } from "../../config/schema.js";
import { assembleWrit, type Writ } from "../../config/wire.js";
import { openRedisBackend, type RedisBackend } from "../../config/wire-redis.js";
import { createMetricsApp } from "../../http/metrics.js";
import type { Logger } from "../../ports/logger.js";
import type { Notifier } from "../../ports/notifier.js";
import { type RunningServer, serveWrit } from "../../server.js";

export interface StartOptions {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  extraPrincipals?: readonly KeyedPrincipal[];
  notifiers?: readonly Notifier[];
  /** Keys loaded by the caller (`writ serve`); otherwise wiring loads or creates them. */
  keys?: JwtKeyRing;
  /** Slack user ids of reviewers not in the configuration (the demo ones in `writ dev`). */
  slackUserIds?: Readonly<Record<string, string>>;
}

export interface StartedWrit {
  readonly writ: Writ;
  readonly server: RunningServer;
  /** The Redis endpoint (no credentials), or undefined on the embedded store. */
  readonly redisEndpoint: string | undefined;
}

/**
 * Assembles and serves a writ the way `writ dev` and `writ serve` share: the
 * configured store (Redis when configured), metrics on their own listener
 * when enabled, and the API. Whatever was opened is closed again if a later
 * step fails.
 */
export async function startWrit(config: WritConfig, options: StartOptions): Promise<StartedWrit> {
  const metrics: PrometheusMetrics | undefined = config.metrics.enabled
    ? createPrometheusMetrics()
    : undefined;
  let backend: RedisBackend | undefined;
  let writ: Writ | undefined;
  try {
    if (storeKind(config, options.env) === "redis") {
      backend = await openRedisBackend(config, options.env, { logger: options.logger, metrics });
    }
    // Slack is configured Bolt's way too: SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN.
    writ = await assembleWrit(withSlackEnv(config, readEnv(options.env)), {
      logger: options.logger,
      ...(options.slackUserIds !== undefined ? { slackUserIds: options.slackUserIds } : {}),
      ...(options.extraPrincipals !== undefined
        ? { extraPrincipals: options.extraPrincipals }
        : {}),
      ...(options.notifiers !== undefined ? { notifiers: options.notifiers } : {}),
      ...(options.keys !== undefined ? { keys: options.keys } : {}),
      ...(backend !== undefined
        ? {
            store: backend.store,
            rateLimiter: backend.rateLimiter,
            notificationState: backend.notificationState,
            onAuditDurable: backend.onAuditDurable,
          }
        : {}),
      ...(metrics !== undefined ? { metrics } : {}),
    });
    const server = await serveWrit(writ, {
      host: config.server.host,
      port: config.server.port,
      logger: options.logger,
      sweepIntervalSeconds: config.requests.sweep_interval_seconds,
      shutdownGraceSeconds: config.server.shutdown_grace_seconds,
      ...(metrics !== undefined
        ? {
            metrics: {
              host: config.metrics.host,
              port: config.metrics.port,
              fetch: createMetricsApp({
                render: () => metrics.render(),
                contentType: PROMETHEUS_CONTENT_TYPE,
                ...(config.metrics.token_sha256 !== undefined
                  ? { tokenSha256: config.metrics.token_sha256 }
                  : {}),
              }).fetch,
            },
          }
        : {}),
    });
    return {
      writ,
      redisEndpoint: backend?.endpoint,
      server: {
        url: server.url,
        port: server.port,
        metricsUrl: server.metricsUrl,
        async stop() {
          await server.stop();
          metrics?.close();
        },
      },
    };
  } catch (error) {
    metrics?.close();
    if (writ !== undefined) await writ.close().catch(() => {});
    else if (backend !== undefined) await backend.store.close().catch(() => {});
    throw error;
  }
}
