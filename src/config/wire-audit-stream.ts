import { connectRedis } from "../adapters/redis/connection.js";
import { asGroupConnection, type RedisGroupConnection } from "../adapters/redis/consumer-group.js";
import { type KeyLayout, keyLayout } from "../adapters/redis/keys.js";
import { isWritError, WritError } from "../domain/errors.js";
import type { Logger } from "../ports/logger.js";
import { ConfigError, loadConfigFile, parseConfig, readEnv } from "./load.js";
import { redisConnectOptions, resolveRedisSettings, storeKind } from "./redis-settings.js";

/** A connection to the Redis that holds writ's event stream, for a reader outside writ. */
export interface AuditStreamConnection {
  readonly connection: RedisGroupConnection;
  /** The store's keys: the stream is `keys.stream`, as writ writes it. */
  readonly keys: KeyLayout;
  /** Where it connected, without credentials, for messages. */
  readonly endpoint: string;
}

/** Whether a Redis to read is named at all: a configuration file, or `WRIT_REDIS_URL`. */
export function auditStreamConfigured(
  configFile: string | undefined,
  env: NodeJS.ProcessEnv,
): boolean {
  return configFile !== undefined || readEnv(env).WRIT_CONFIG !== undefined || !!env.WRIT_REDIS_URL;
}

/**
 * Connects to the Redis of a writ deployment the way `writ serve` does: the
 * configuration file (`configFile`, else `WRIT_CONFIG`) through the same
 * loader, `WRIT_REDIS_URL` replacing `redis.url`, secrets and TLS files read
 * as configured. The stream key comes from the store's key layout, so it is
 * the one writ writes. Rejects with a {@link ConfigError} naming the key when
 * the configuration has no Redis, and with `store_unavailable` when Redis
 * cannot be reached within `redis.connect_timeout_seconds`.
 */
export async function openAuditStream(options: {
  configFile: string | undefined;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** `CLIENT SETNAME`, to tell this reader apart in `CLIENT LIST`. */
  clientName: string;
  /** The longest a blocking read on the connection waits (its BLOCK), allowed for by its health check. */
  blockingMs?: number;
}): Promise<AuditStreamConnection> {
  const file = options.configFile ?? readEnv(options.env).WRIT_CONFIG;
  const config = file !== undefined ? await loadConfigFile(file) : parseConfig({}, "defaults");
  if (storeKind(config, options.env) !== "redis") {
    throw new ConfigError(
      `store.kind: ${file ?? "the configuration"} keeps events in memory, so there is no stream to read; set redis.url (or WRIT_REDIS_URL) to the Redis writ runs on`,
    );
  }
  const settings = await resolveRedisSettings(config, options.env);
  const keys = keyLayout(settings.keyPrefix, undefined);
  const client = await connectRedis({
    ...redisConnectOptions(settings),
    clientName: options.clientName,
    ...(options.blockingMs !== undefined ? { blockingMs: options.blockingMs } : {}),
    logger: options.logger,
  }).catch((error: unknown) => {
    if (!isWritError(error)) throw error;
    // The endpoint without credentials: the reader's first question is "which Redis?".
    const cause = typeof error.details?.cause === "string" ? ` (${error.details.cause})` : "";
    throw new WritError(
      error.code,
      `Could not connect to Redis at ${settings.endpoint} within ${settings.connectTimeoutMs / 1000} s${cause}.`,
    );
  });
  try {
    return { connection: asGroupConnection(client), keys, endpoint: settings.endpoint };
  } catch (error) {
    client.destroy();
    throw error;
  }
}
