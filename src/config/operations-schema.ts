import { isIP } from "node:net";
import { z } from "zod";
import { AGENT_ID, PERSON_ID } from "../domain/principal.js";

const REDIS_PROTOCOLS = new Set(["redis:", "rediss:"]);
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,127}$/;

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/**
 * Checks a Redis URL. `allowPassword` is false for the configuration file: a
 * password written there would sit in a file that is copied, diffed and
 * reviewed. The environment (`WRIT_REDIS_URL`) may carry one.
 */
export function redisUrlProblem(value: string, allowPassword: boolean): string | undefined {
  const url = parseUrl(value);
  if (url === undefined || !REDIS_PROTOCOLS.has(url.protocol)) {
    return "expected a redis:// or rediss:// URL, e.g. redis://redis.internal:6379";
  }
  if (url.hostname === "") return "the URL names no host";
  if (url.password !== "" && !allowPassword) {
    return "holds a password; put it in redis.password_file or redis.password_env (or the whole URL in WRIT_REDIS_URL), never in the configuration file";
  }
  if (url.pathname !== "" && url.pathname !== "/" && !/^\/\d{1,2}$/.test(url.pathname)) {
    return "the path may only be a database number, e.g. redis://host:6379/0";
  }
  // The Redis client ignores both, so a password put there (as other clients
  // accept) would be dropped in silence, then printed with the URL in messages.
  if (url.search !== "" || url.hash !== "") {
    return "has a query or fragment (?… or #…), which writ ignores; a password goes in redis.password_file or redis.password_env (or the URL's user part, in WRIT_REDIS_URL only)";
  }
  return undefined;
}

const redisUrl = z.string().superRefine((value, ctx) => {
  const problem = redisUrlProblem(value, false);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});

const secretReference = {
  /** A file holding the secret (trailing newline ignored); must not be readable by others. */
  password_file: z.string().min(1).optional(),
  /** The name of an environment variable holding the secret (trailing newline ignored). */
  password_env: z
    .string()
    .regex(ENV_NAME, "an environment variable name, e.g. WRIT_REDIS_PASSWORD")
    .optional(),
  /** Never accepted: the error says where a password goes instead. */
  password: z
    .never({
      error:
        "a password is never written in the configuration file; use password_file (a file readable only by writ) or password_env (the name of an environment variable)",
    })
    .optional(),
};

function oneSecretAtMost(
  value: { password_file?: string | undefined; password_env?: string | undefined },
  ctx: z.RefinementCtx,
) {
  if (value.password_file !== undefined && value.password_env !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["password_env"],
      message: "set password_file or password_env, not both",
    });
  }
}

/** TLS to Redis. Certificates are always verified; there is no switch to turn that off. */
export const RedisTlsConfig = z
  .strictObject({
    /** CA bundle (PEM) that signed the server certificate; default: the system CAs. */
    ca_file: z.string().min(1).optional(),
    /** Client certificate (PEM), for Redis configured with `tls-auth-clients yes`. */
    cert_file: z.string().min(1).optional(),
    /** The client certificate's private key (PEM); must not be readable by others. */
    key_file: z.string().min(1).optional(),
    /** The name to verify the server certificate against, when it differs from the host. */
    servername: z.string().min(1).max(253).optional(),
  })
  .superRefine((tls, ctx) => {
    if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [tls.cert_file === undefined ? "cert_file" : "key_file"],
        message: "cert_file and key_file go together: set both or neither",
      });
    }
  });

const SENTINEL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** A host name or IP address, as it may stand in a URL (IPv6 without brackets). */
const hostName = z
  .string()
  .min(1)
  .max(253)
  .refine(
    (host) => URL.canParse(`redis://${host.includes(":") ? `[${host}]` : host}:1`),
    "a host name or IP address, e.g. sentinel-1.internal or 10.0.1.5",
  );

/** One Sentinel to ask for the current primary. */
export const RedisSentinelNodeConfig = z.strictObject({
  host: hostName,
  /** Sentinel's port (default 26379). */
  port: z.number().int().min(1).max(65_535).default(26_379),
});

/**
 * Redis Sentinel: writ asks the Sentinels for the current primary of `name`
 * and follows its failovers. The primary's credentials and TLS are the
 * `redis.username`, `redis.password_*` and `redis.tls` keys, as in the other
 * modes; the keys here are the Sentinels' own.
 */
export const RedisSentinelConfig = z
  .strictObject({
    /** The name the Sentinels know the primary by (`sentinel monitor <name> …`). */
    name: z.string().regex(SENTINEL_NAME, "1 to 64 of letters, digits and _ . -"),
    /** Some of the Sentinels; a few are enough. */
    nodes: z.array(RedisSentinelNodeConfig).min(1).max(64),
    /** The Sentinels' ACL user, when they require one. */
    username: z.string().min(1).max(128).optional(),
    /** The Sentinels' password (`requirepass` in sentinel.conf), when they require one. */
    ...secretReference,
  })
  .superRefine(oneSecretAtMost);

/**
 * Trimming of the event stream. Absent (the default), the stream keeps every
 * event. Present, writ trims it to about `max_len` events, but never past an
 * event that a replica's audit log, heard from within
 * `follower_timeout_seconds`, has not yet fsynced.
 */
export const StreamTrimConfig = z.strictObject({
  /** Trim the stream to about this many events, once every replica's log has them. */
  max_len: z.number().int().min(1000).max(1_000_000_000).default(10_000_000),
  /**
   * A replica whose audit log has not reported for this long stops holding
   * trimming back (live replicas report every second). A replica away longer
   * may find events it has not written trimmed: keep this above your longest
   * planned outage of a replica.
   */
  follower_timeout_seconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400),
});

/**
 * The Redis deployment: `url` (standalone, or a primary behind a proxy),
 * `nodes` (Redis Cluster seed nodes) or `sentinel`. `WRIT_REDIS_URL` replaces `url`.
 */
export const RedisConfig = z
  .strictObject({
    /** `redis://host:6379` or `rediss://host:6380` (TLS). No password in it. */
    url: redisUrl.optional(),
    /** Redis Cluster: some of the cluster's nodes; writ discovers the rest. */
    nodes: z.array(redisUrl).min(1).max(64).optional(),
    /** Redis Sentinel: the primary's name and some of the Sentinels. */
    sentinel: RedisSentinelConfig.optional(),
    /** The ACL user writ logs in as (`AUTH <username> <password>`). */
    username: z.string().min(1).max(128).optional(),
    ...secretReference,
    /**
     * TLS settings. With `url` or `nodes`, TLS is on with `rediss://` URLs (this
     * section with `redis://` is an error); with `sentinel`, TLS is on, to the
     * Sentinels and the primary alike, when this section is present.
     */
    tls: RedisTlsConfig.optional(),
    /**
     * Prefix of every key writ writes, inside a hash tag (`{writ}:…`) so that all
     * of them live in one Cluster slot and one script can touch them together.
     * Give each writ deployment sharing one Redis its own prefix.
     */
    key_prefix: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, "1 to 64 of letters, digits and _ . : -")
      .default("writ"),
    /** Trimming of the event stream; absent, the stream keeps every event. */
    stream_trim: StreamTrimConfig.optional(),
    /** Replaced by `stream_trim`: the error says so. */
    stream_max_len: z
      .never({
        error:
          "replaced by redis.stream_trim.max_len, which never trims an event a replica's audit log has not yet written (see docs/operations.md, Stream length)",
      })
      .optional(),
    /** How long `writ serve` waits for Redis at start before it gives up. */
    connect_timeout_seconds: z.number().int().min(1).max(300).default(10),
  })
  .superRefine((redis, ctx) => {
    oneSecretAtMost(redis, ctx);
    const given = (["url", "nodes", "sentinel"] as const).filter((k) => redis[k] !== undefined);
    if (given.length > 1) {
      ctx.addIssue({
        code: "custom",
        path: [given[1] as string],
        message:
          "set one of url (one server), nodes (Redis Cluster) and sentinel (Redis Sentinel), not several",
      });
    }
  });

/** Where requests and the event stream live. */
export const StoreConfig = z.strictObject({
  /**
   * `memory`: the embedded store of `writ dev` (lost on restart, one process).
   * `redis`: production. Default: `redis` when a Redis endpoint is configured
   * (or `WRIT_REDIS_URL` is set), else `memory`.
   */
  kind: z.enum(["memory", "redis"]).optional(),
});

const perMinute = z.number().int().min(1).max(1_000_000);
const burst = z.number().int().min(1).max(100_000);

/**
 * Per-agent limits on `POST /v1/requests`, and per-resource-server limits on
 * `POST /v1/tokens/consume`. With Redis they hold across every replica; with
 * the memory store, per process.
 */
export const RateLimitsConfig = z.strictObject({
  /** Sustained requests per minute for each agent; 0 turns the limit off. */
  requests_per_minute_per_agent: z.number().int().min(0).max(1_000_000).default(600),
  /** Requests an agent may make at once after a quiet period. */
  burst: burst.default(100),
  /**
   * Limits for particular agents, by id, replacing the default for them; a
   * workload identity's agent by its mapped id (`gh:acme/reports`).
   */
  agents: z
    .record(
      z.string().regex(AGENT_ID, "an agent id"),
      z.strictObject({ requests_per_minute: perMinute, burst: burst.optional() }),
    )
    .default({}),
  /**
   * Sustained refused consumes per minute for each resource server (a used
   * token presented again, or one whose credential ended: each is recorded);
   * 0 turns the limit off. A first use never counts: a working resource server
   * refuses a token now and then, and a loop retrying one is held here.
   */
  refusals_per_minute_per_resource_server: z.number().int().min(0).max(1_000_000).default(60),
  /** Refused consumes a resource server may make at once after a quiet period. */
  refusal_burst: burst.default(100),
  /** Limits for particular resource servers, by id, replacing the default for them. */
  resource_servers: z
    .record(
      z.string().regex(PERSON_ID, "a resource server id"),
      z.strictObject({ refusals_per_minute: perMinute, burst: burst.optional() }),
    )
    .default({}),
});

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const bare = host.replace(/^\[|\]$/g, "");
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

/** The Prometheus endpoint, on its own listener. */
export const MetricsConfig = z
  .strictObject({
    /** Serve `GET /metrics`. */
    enabled: z.boolean().default(false),
    /** Address of the metrics listener; never the API's port. */
    host: z.string().min(1).default("127.0.0.1"),
    /** Port of the metrics listener (0 picks a free one). */
    port: z.number().int().min(0).max(65_535).default(9464),
    /**
     * SHA-256 (lowercase hex) of a bearer token the scraper must send. Required
     * when `host` is not a loopback address. Make one with `writ keygen --kind metrics`.
     */
    token_sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "the token's SHA-256 as 64 lowercase hex characters")
      .optional(),
  })
  .superRefine((metrics, ctx) => {
    if (metrics.enabled && metrics.token_sha256 === undefined && !isLoopback(metrics.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["token_sha256"],
        message: `metrics.host ${metrics.host} is reachable from other machines: set metrics.token_sha256 (\`writ keygen --kind metrics\`) or listen on 127.0.0.1`,
      });
    }
  });

export type RedisConfigValue = z.infer<typeof RedisConfig>;
export type RedisSentinelConfigValue = z.infer<typeof RedisSentinelConfig>;
export type RateLimitsConfigValue = z.infer<typeof RateLimitsConfig>;
export type MetricsConfigValue = z.infer<typeof MetricsConfig>;
