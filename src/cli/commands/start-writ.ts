import type { JwtKeyRing } from "../../adapters/jwt-keys.js";
import type { KeyedPrincipal } from "../../adapters/key-identity.js";
import {
  createPrometheusMetrics,
  type MetricsSnapshot,
  PROMETHEUS_CONTENT_TYPE,
  type PrometheusMetrics,
} from "../../adapters/prometheus-metrics.js";
import type { AuditLogReport, RemoteAuditLog } from "../../audit/remote-log.js";
import { ConfigError, readEnv } from "../../config/load.js";
import { withSlackEnv } from "../../config/notify-config.js";
import { storeKind } from "../../config/redis-settings.js";
import type { WritConfig } from "../../config/schema.js";
import { assembleWrit, type Writ } from "../../config/wire.js";
import { openRedisBackend, type RedisBackend } from "../../config/wire-redis.js";
import { createMetricsApp } from "../../http/metrics.js";
import { PolicyLoadError } from "../../policy/policy-set.js";
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
  /** This process's part when a replica runs worker processes (default: the whole replica). */
  role?: ProcessRole;
}

/**
 * A replica with workers is one primary and several workers sharing its port.
 * The primary keeps the audit log, runs the background work (expiry sweep,
 * notification delivery, stream trimming) and serves `/metrics` for all; the
 * workers serve the API.
 */
export type ProcessRole =
  | {
      readonly kind: "primary";
      /** Told after every fsync of the audit log, for the workers. */
      readonly onAuditReport: (report: AuditLogReport) => void;
      /** The workers' metrics, gathered per scrape. */
      readonly workerMetrics: () => Promise<WorkerMetrics>;
    }
  | { readonly kind: "worker"; readonly audit: RemoteAuditLog };

/** What a primary's workers have counted, as one scrape gathers it. */
export interface WorkerMetrics {
  /** The snapshots of the workers that answered, by worker id. */
  readonly answered: ReadonlyMap<string, MetricsSnapshot>;
  /**
   * The last snapshots of workers that did not answer in time, and the sum of
   * those of workers that exited: counted still, so that no sum goes back.
   */
  readonly counted: readonly MetricsSnapshot[];
}

export interface StartedWrit {
  readonly writ: Writ;
  readonly server: RunningServer;
  /** The Redis endpoint (no credentials), or undefined on the embedded store. */
  readonly redisEndpoint: string | undefined;
  /** This process's metrics, when enabled. */
  readonly metrics: PrometheusMetrics | undefined;
}

/**
 * Assembles and serves a writ the way `writ dev` and `writ serve` share: the
 * configured store (Redis when configured), metrics on their own listener
 * when enabled, and the API. Whatever was opened is closed again if a later
 * step fails.
 */
export async function startWrit(config: WritConfig, options: StartOptions): Promise<StartedWrit> {
  const { role } = options;
  const metrics: PrometheusMetrics | undefined = config.metrics.enabled
    ? createPrometheusMetrics()
    : undefined;
  let backend: RedisBackend | undefined;
  let writ: Writ | undefined;
  try {
    if (storeKind(config, options.env) === "redis") {
      backend = await openRedisBackend(config, options.env, {
        logger: options.logger,
        metrics,
        trimStream: role?.kind !== "worker",
      });
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
            consumeRateLimiter: backend.consumeRateLimiter,
            notificationState: backend.notificationState,
            consoleSessions: backend.consoleSessions,
            revocations: backend.revocations,
            onAuditDurable: backend.onAuditDurable,
          }
        : {}),
      ...(metrics !== undefined ? { metrics } : {}),
      ...(role?.kind === "worker" ? { remoteAudit: role.audit } : {}),
      ...(role?.kind === "primary" ? { onAuditReport: role.onAuditReport } : {}),
    });
    // A worker serves nothing before its primary has said how far the log is.
    if (role?.kind === "worker") await role.audit.ready;
    const server = await serveWrit(writ, {
      host: config.server.host,
      port: config.server.port,
      logger: options.logger,
      api: role?.kind !== "primary",
      sweep: role?.kind !== "worker",
      sweepIntervalSeconds: config.requests.sweep_interval_seconds,
      shutdownGraceSeconds: config.server.shutdown_grace_seconds,
      ...(metrics !== undefined && role?.kind !== "worker"
        ? {
            metrics: {
              host: config.metrics.host,
              port: config.metrics.port,
              fetch: createMetricsApp({
                render:
                  role?.kind === "primary"
                    ? async () => {
                        const gathered = await role.workerMetrics();
                        return metrics.render(gathered.answered, gathered.counted);
                      }
                    : () => metrics.render(),
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
      metrics,
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
    throw asConfigError(error, config, role);
  }
}

/**
 * A failure to start that the configuration can fix, as a `ConfigError` that
 * names the key and the fix: policies that do not load, a listener that cannot
 * bind. Anything else is returned as it is.
 */
function asConfigError(error: unknown, config: WritConfig, role: ProcessRole | undefined): unknown {
  if (error instanceof PolicyLoadError) {
    return new ConfigError(
      `policies.dir: ${error.message}\n  Fix the policies (\`writ policy test\` checks them), or point policies.dir at the directory that holds them.`,
    );
  }
  const { code, syscall, port, hostname } = error as NodeJS.ErrnoException & {
    port?: number;
    hostname?: string;
  };
  if (syscall !== "listen" && syscall !== "getaddrinfo") return error;
  // The API listens first; a primary serves only metrics, a worker only the API.
  const metricsListens = config.metrics.enabled && role?.kind !== "worker";
  const apiFailed =
    role?.kind !== "primary" &&
    (!metricsListens ||
      (syscall === "listen" ? port === config.server.port : hostname === config.server.host));
  const section = apiFailed ? "server" : "metrics";
  const { host, port: configured } = apiFailed ? config.server : config.metrics;
  switch (code) {
    case "EADDRINUSE":
      return new ConfigError(
        `${section}.port: ${host}:${configured} is already in use (EADDRINUSE); stop what listens there, or set another ${section}.port`,
      );
    case "EACCES":
      return new ConfigError(
        `${section}.port: listening on port ${configured} needs privileges writ's user lacks (EACCES); use a port above 1023`,
      );
    case "EADDRNOTAVAIL":
      return new ConfigError(
        `${section}.host: ${host} is not an address of this machine (EADDRNOTAVAIL); use one of its addresses, or 0.0.0.0 for all of them`,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ConfigError(
        `${section}.host: ${host} does not resolve (${code}); use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0`,
      );
    default:
      return error;
  }
}
