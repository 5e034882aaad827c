import { createRedisNotificationState } from "../adapters/notification-state-redis.js";
import { createRedisRateLimiter, type RedisScriptClient } from "../adapters/redis-rate-limiter.js";
import { connectRedis, createRedisStore, type RedisStore } from "../adapters/redis-store.js";
import type { Logger } from "../ports/logger.js";
import type { Metrics } from "../ports/metrics.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { RateLimiter } from "../ports/rate-limiter.js";
import { resolveRedisSettings } from "./redis-settings.js";
import type { WritConfig } from "./schema.js";
import { rateLimitFor } from "./wire-operations.js";

export interface RedisBackend {
  readonly store: RedisStore;
  /** Per-agent limits held in the same Redis, so they hold across replicas. */
  readonly rateLimiter: RateLimiter;
  /** Slack message ids, delivery cursors and seen payloads, shared by replicas. */
  readonly notificationState: NotificationState;
  /** Where writ connected, without credentials, for logs. */
  readonly endpoint: string;
}

/**
 * The node-redis client runs any script; the store's connection type names only
 * what the store itself calls, so the limiter's two methods are checked here.
 */
function scriptClient(client: object): RedisScriptClient {
  const candidate = client as Partial<RedisScriptClient>;
  if (typeof candidate.evalSha !== "function" || typeof candidate.eval !== "function") {
    throw new TypeError("the Redis connection cannot run scripts (evalSha/eval missing)");
  }
  return client as RedisScriptClient;
}

/**
 * Connects to the configured Redis and builds the store and the rate limiter on
 * one connection. Rejects with a `ConfigError` for a bad configuration and with
 * `store_unavailable` when Redis cannot be reached within the connect timeout.
 */
export async function openRedisBackend(
  config: WritConfig,
  env: NodeJS.ProcessEnv,
  options: { logger: Logger; metrics?: Metrics | undefined },
): Promise<RedisBackend> {
  const settings = await resolveRedisSettings(config, env);
  const client = await connectRedis({
    ...(settings.url !== undefined ? { url: settings.url } : {}),
    ...(settings.clusterNodes !== undefined ? { clusterNodes: settings.clusterNodes } : {}),
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...(settings.tls !== undefined ? { tls: settings.tls } : {}),
    connectTimeoutMs: settings.connectTimeoutMs,
    logger: options.logger,
  });
  const store = createRedisStore({
    client,
    prefix: settings.keyPrefix,
    streamMaxLen: settings.streamMaxLen,
    closeClient: true,
    logger: options.logger,
  });
  const rateLimiter = createRedisRateLimiter({
    client: scriptClient(client),
    limitFor: rateLimitFor(config),
    prefix: `{${settings.keyPrefix}}`,
    onError: () => options.metrics?.countRedisError("rate_limit"),
  });
  const notificationState = createRedisNotificationState({
    client: scriptClient(client),
    prefix: `{${settings.keyPrefix}}`,
  });
  return { store, rateLimiter, notificationState, endpoint: settings.endpoint };
}
