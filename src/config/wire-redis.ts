import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { createRedisNotificationState } from "../adapters/notification-state-redis.js";
import {
  createRedisSessionStore,
  type SessionRedisClient,
} from "../adapters/redis/console-sessions.js";
import { createRedisDeniedSessions } from "../adapters/redis/denied-sessions.js";
import { createRedisSharedLock } from "../adapters/redis/shared-lock.js";
import { createRedisRateLimiter, type RedisScriptClient } from "../adapters/redis-rate-limiter.js";
import { connectRedis, createRedisStore, type RedisStore } from "../adapters/redis-store.js";
import type { SessionStore } from "../console/sessions.js";
import { systemClock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { Metrics } from "../ports/metrics.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { RateLimiter } from "../ports/rate-limiter.js";
import type { StreamGap } from "../ports/store.js";
import { redisConnectOptions, resolveRedisSettings } from "./redis-settings.js";
import type { WritConfig } from "./schema.js";
import type { SharedRevocations } from "./wire-aws.js";
import { consumeLimitFor, rateLimitFor } from "./wire-operations.js";

export interface RedisBackend {
  readonly store: RedisStore;
  /** Per-agent limits held in the same Redis, so they hold across replicas. */
  readonly rateLimiter: RateLimiter;
  readonly consumeRateLimiter: RateLimiter;
  /** Slack message ids, delivery cursors and seen payloads, shared by replicas. */
  readonly notificationState: NotificationState;
  /** Console sessions, shared by every replica and worker. */
  readonly consoleSessions: SessionStore;
  /** How every replica and worker keeps AWS revocations together: see {@link SharedRevocations}. */
  readonly revocations: SharedRevocations;
  /** Where writ connected, without credentials, for logs. */
  readonly endpoint: string;
  /**
   * Records how far this process's audit log has fsynced the stream, under the
   * log's id (see {@link logFollowerId}): the `onAuditDurable` of `assembleWrit`.
   * The first call answers the gap when the stream was trimmed past the log.
   */
  readonly onAuditDurable: (
    cursor: string | undefined,
    logDir: string,
  ) => Promise<StreamGap | undefined>;
}

/** The file in an audit log directory that holds the log's id among the stream's followers. */
export const FOLLOWER_ID_FILE = "stream-follower-id";
const FOLLOWER_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * The id an audit log reports its cursor under, kept in the log's own
 * directory: one process writes a directory at a time (its writer lock), so
 * the id names the log, and a replica that restarts takes up its own record
 * instead of leaving a stale one to hold trimming back. It starts with the
 * host's name, for people reading `{writ}:followers`; the random part keeps
 * two hosts of one name apart.
 */
export async function logFollowerId(logDir: string): Promise<string> {
  const path = join(logDir, FOLLOWER_ID_FILE);
  const existing = await readFile(path, "utf8").then(
    (text) => text.trim(),
    (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    },
  );
  if (existing !== undefined && FOLLOWER_ID.test(existing)) return existing;
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_.-]/g, "-")
      .slice(0, 64) || "host";
  const id = `${host}-${randomBytes(8).toString("hex")}`;
  // An unreadable id is replaced: a new id only leaves the old record to expire.
  await writeFile(path, `${id}\n`, { mode: 0o600 });
  return id;
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

/** The session store's three commands, checked like the limiter's. */
function sessionClient(client: object): SessionRedisClient {
  const candidate = client as Partial<SessionRedisClient>;
  if (
    typeof candidate.eval !== "function" ||
    typeof candidate.hGetAll !== "function" ||
    typeof candidate.del !== "function"
  ) {
    throw new TypeError("the Redis connection lacks eval, hGetAll or del");
  }
  return client as SessionRedisClient;
}

/**
 * Connects to the configured Redis and builds the store and the rate limiter on
 * one connection. Rejects with a `ConfigError` for a bad configuration and with
 * `store_unavailable` when Redis cannot be reached within the connect timeout.
 */
export async function openRedisBackend(
  config: WritConfig,
  env: NodeJS.ProcessEnv,
  options: {
    logger: Logger;
    metrics?: Metrics | undefined;
    /** Trim the stream as configured (default true); a replica's workers leave it to its primary. */
    trimStream?: boolean;
  },
): Promise<RedisBackend> {
  const settings = await resolveRedisSettings(config, env);
  // Every use of this connection is bounded by its own deadline (see withDeadline).
  const client = await connectRedis({
    ...redisConnectOptions(settings),
    commandTimeouts: false,
    logger: options.logger,
  });
  const store = createRedisStore({
    client,
    prefix: settings.keyPrefix,
    ...(settings.streamTrim !== undefined && options.trimStream !== false
      ? { streamTrim: settings.streamTrim }
      : {}),
    closeClient: true,
    logger: options.logger,
  });
  let followerId: Promise<string> | undefined;
  const rateLimiter = createRedisRateLimiter({
    client: scriptClient(client),
    limitFor: rateLimitFor(config),
    prefix: `{${settings.keyPrefix}}`,
    onError: () => options.metrics?.countRedisError("rate_limit"),
  });
  const consumeRateLimiter = createRedisRateLimiter({
    client: scriptClient(client),
    limitFor: consumeLimitFor(config),
    prefix: `{${settings.keyPrefix}}`,
    name: "consume",
    onError: () => options.metrics?.countRedisError("rate_limit"),
  });
  const notificationState = createRedisNotificationState({
    client: scriptClient(client),
    prefix: `{${settings.keyPrefix}}`,
  });
  const consoleSessions = createRedisSessionStore({
    client: sessionClient(client),
    prefix: `{${settings.keyPrefix}}`,
    clock: systemClock,
    idleTimeoutSeconds: config.console.idle_timeout_seconds,
    maxAgeSeconds: config.console.session_max_seconds,
  });
  const revocations: SharedRevocations = {
    lock: createRedisSharedLock({
      client: scriptClient(client),
      prefix: `{${settings.keyPrefix}}`,
      logger: options.logger,
    }),
    ledger: createRedisDeniedSessions({
      client: scriptClient(client),
      name: "aws-denies",
      prefix: `{${settings.keyPrefix}}`,
    }),
  };
  return {
    store,
    rateLimiter,
    consumeRateLimiter,
    notificationState,
    consoleSessions,
    revocations,
    endpoint: settings.endpoint,
    async onAuditDurable(cursor, logDir) {
      followerId ??= logFollowerId(logDir);
      return store.recordLogCursor(await followerId, cursor);
    },
  };
}
