import type { RedisConnectOptions } from "../adapters/redis/connection.js";
import { ConfigError } from "./load.js";
import { redisUrlProblem } from "./operations-schema.js";
import type { WritConfig } from "./schema.js";
import { openReferencedFile, readSecretFile, referencedPassword } from "./secret-file.js";

/** TLS material, read from the configured files. */
export interface RedisTlsSettings {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
}

/** Sentinels to ask for the primary, with their own credentials. */
export interface RedisSentinelSettings {
  readonly name: string;
  /** `redis://host:port` (`rediss://` with TLS) of each Sentinel. */
  readonly nodes: readonly string[];
  readonly username?: string;
  readonly password?: string;
}

/** Trimming of the event stream (`redis.stream_trim`). */
export interface StreamTrimSettings {
  readonly maxLen: number;
  readonly followerTimeoutMs: number;
}

/**
 * A Redis deployment ready to connect to: endpoints, credentials and TLS
 * material resolved from the configuration, the environment and files.
 * `password` is a secret: it goes to the client and nowhere else.
 */
export interface RedisSettings {
  /** Standalone: the URL, possibly with credentials from `WRIT_REDIS_URL`. */
  readonly url?: string;
  /** Redis Cluster seed nodes. */
  readonly clusterNodes?: readonly string[];
  /** Redis Sentinel. */
  readonly sentinel?: RedisSentinelSettings;
  /** The data nodes' ACL user and password (the primary's, with Sentinel). */
  readonly username?: string;
  readonly password?: string;
  /** Present when TLS is on (`rediss://` URLs, or `redis.tls` with Sentinel). */
  readonly tls?: RedisTlsSettings;
  readonly keyPrefix: string;
  /** Undefined: the stream is never trimmed. */
  readonly streamTrim?: StreamTrimSettings;
  readonly connectTimeoutMs: number;
  /** The endpoints for logs and messages, without any credential. */
  readonly endpoint: string;
}

function envUrl(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.WRIT_REDIS_URL;
  return value === undefined || value === "" ? undefined : value;
}

/** The store writ runs on: explicit `store.kind`, else Redis when an endpoint is configured. */
export function storeKind(config: WritConfig, env: NodeJS.ProcessEnv): "memory" | "redis" {
  if (config.store.kind !== undefined) return config.store.kind;
  const configured =
    envUrl(env) !== undefined ||
    config.redis.url !== undefined ||
    config.redis.nodes !== undefined ||
    config.redis.sentinel !== undefined;
  return configured ? "redis" : "memory";
}

/** A URL without its password (nor query or fragment), for logs. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password !== "") url.password = "";
    url.search = "";
    url.hash = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return "(unparseable URL)";
  }
}

async function readPemFile(path: string, key: string): Promise<string> {
  const handle = await openReferencedFile(path, key);
  try {
    const text = await handle.readFile("utf8");
    if (!text.includes("-----BEGIN ")) throw new ConfigError(`${key}: ${path} is not a PEM file`);
    return text;
  } finally {
    await handle.close();
  }
}

/** `host:port` as a URL authority; IPv6 addresses in brackets. */
function authority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

async function tlsSettings(config: WritConfig): Promise<RedisTlsSettings> {
  const tls = config.redis.tls;
  if (tls === undefined) return {};
  return {
    ...(tls.ca_file !== undefined
      ? { ca: await readPemFile(tls.ca_file, "redis.tls.ca_file") }
      : {}),
    ...(tls.cert_file !== undefined
      ? { cert: await readPemFile(tls.cert_file, "redis.tls.cert_file") }
      : {}),
    ...(tls.key_file !== undefined
      ? { key: await readSecretFile(tls.key_file, "redis.tls.key_file") }
      : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
  };
}

/**
 * Resolves the Redis settings of a configuration whose store is Redis:
 * `WRIT_REDIS_URL` replaces `redis.url`, secrets are read from their files or
 * variables, TLS files are loaded. Every problem is a {@link ConfigError}
 * naming the key (or variable) and how to fix it.
 */
export async function resolveRedisSettings(
  config: WritConfig,
  env: NodeJS.ProcessEnv,
): Promise<RedisSettings> {
  const { redis } = config;
  const fromEnv = envUrl(env);
  if (fromEnv !== undefined) {
    const problem = redisUrlProblem(fromEnv, true);
    if (problem !== undefined) throw new ConfigError(`WRIT_REDIS_URL: ${problem}`);
    if (redis.nodes !== undefined) {
      throw new ConfigError(
        "WRIT_REDIS_URL is set, but redis.nodes (Redis Cluster) is configured too: use one of them",
      );
    }
    if (redis.sentinel !== undefined) {
      throw new ConfigError(
        "WRIT_REDIS_URL is set, but redis.sentinel is configured too: use one of them",
      );
    }
  }
  const common = {
    keyPrefix: redis.key_prefix,
    ...(redis.stream_trim !== undefined
      ? {
          streamTrim: {
            maxLen: redis.stream_trim.max_len,
            followerTimeoutMs: redis.stream_trim.follower_timeout_seconds * 1000,
          },
        }
      : {}),
    connectTimeoutMs: redis.connect_timeout_seconds * 1000,
  };
  if (redis.sentinel !== undefined) {
    const { sentinel } = redis;
    const password = await referencedPassword(redis, "redis", env);
    // No URL says rediss:// here: the tls section turns TLS on, for Sentinels and primary alike.
    const scheme = redis.tls !== undefined ? "rediss" : "redis";
    const nodes = sentinel.nodes.map((n) => `${scheme}://${authority(n.host, n.port)}`);
    const sentinelPassword = await referencedPassword(sentinel, "redis.sentinel", env);
    const tls = redis.tls !== undefined ? await tlsSettings(config) : undefined;
    return {
      sentinel: {
        name: sentinel.name,
        nodes,
        ...(sentinel.username !== undefined ? { username: sentinel.username } : {}),
        ...(sentinelPassword !== undefined ? { password: sentinelPassword } : {}),
      },
      ...(redis.username !== undefined ? { username: redis.username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(tls !== undefined ? { tls } : {}),
      ...common,
      endpoint: `sentinel ${sentinel.name} via ${nodes.join(",")}`,
    };
  }
  const url = fromEnv ?? redis.url;
  const urls = url !== undefined ? [url] : (redis.nodes ?? []);
  if (urls.length === 0) {
    throw new ConfigError(
      "store.kind is redis, but no Redis is configured: set redis.url (or redis.nodes for Redis Cluster, redis.sentinel for Redis Sentinel), or the environment variable WRIT_REDIS_URL",
    );
  }
  const password = await referencedPassword(redis, "redis", env);
  if (password !== undefined && url !== undefined && new URL(url).password !== "") {
    throw new ConfigError(
      "WRIT_REDIS_URL carries a password and redis.password_file/password_env is set too: keep one",
    );
  }
  const secure = urls.map((u) => new URL(u).protocol === "rediss:");
  if (secure.some((s) => s !== secure[0])) {
    throw new ConfigError("redis.nodes: mix of redis:// and rediss:// URLs; use rediss:// for all");
  }
  if (redis.tls !== undefined && secure[0] === false) {
    throw new ConfigError(
      "redis.tls is set, but the Redis URL is redis://: use rediss:// so that TLS is on for every connection",
    );
  }
  const tls = secure[0] === true ? await tlsSettings(config) : undefined;
  return {
    ...(url !== undefined ? { url } : { clusterNodes: urls }),
    ...(redis.username !== undefined ? { username: redis.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...common,
    endpoint: url !== undefined ? redactUrl(url) : `cluster ${urls.map(redactUrl).join(",")}`,
  };
}

/**
 * The `connectRedis` options of resolved settings (all but the logger and the
 * client name): one place that knows which settings go where.
 */
export function redisConnectOptions(
  settings: RedisSettings,
): Omit<RedisConnectOptions, "logger" | "clientName"> {
  return {
    ...(settings.url !== undefined ? { url: settings.url } : {}),
    ...(settings.clusterNodes !== undefined ? { clusterNodes: settings.clusterNodes } : {}),
    ...(settings.sentinel !== undefined ? { sentinel: settings.sentinel } : {}),
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...(settings.tls !== undefined ? { tls: settings.tls } : {}),
    connectTimeoutMs: settings.connectTimeoutMs,
  };
}
