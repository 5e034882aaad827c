import { createClient, createCluster, createSentinel, ErrorReply } from "redis";
import { WritError } from "../../domain/errors.js";
import type { Logger } from "../../ports/logger.js";
import { OperationTimeout, withDeadline } from "./deadline.js";
import { redisStoreScripts } from "./scripts.js";

/** What the change feed needs of its own connection: a blocking stream read. */
export interface RedisStreamReader {
  xRead(
    streams: { key: string; id: string },
    options?: { BLOCK?: number; COUNT?: number },
  ): Promise<unknown>;
  xRevRange(
    key: string,
    start: string,
    end: string,
    options?: { COUNT?: number },
  ): Promise<unknown>;
  connect(): Promise<unknown>;
  /** Closes at once, rejecting pending commands. */
  destroy(): void;
  on(event: "error" | "ready", listener: (...args: unknown[]) => void): unknown;
}

/**
 * What the store needs of a node-redis connection: a client or a cluster
 * created with `scripts: redisStoreScripts` (as `connectRedis` does). Both
 * node-redis shapes satisfy it; replies are typed `unknown` because the
 * store checks every reply itself.
 */
export interface RedisStoreConnection extends RedisStreamReader {
  readonly isReady: boolean;
  /** False once the client is closed (or while it is being made again). */
  readonly isOpen: boolean;
  writCreate(keys: string[], args: string[]): Promise<unknown>;
  writCommit(keys: string[], args: string[]): Promise<unknown>;
  writAppend(keys: string[], args: string[]): Promise<unknown>;
  writList(keys: string[], args: string[]): Promise<unknown>;
  writReindex(keys: string[], args: string[]): Promise<unknown>;
  writFollow(keys: string[], args: string[]): Promise<unknown>;
  writTrim(keys: string[], args: string[]): Promise<unknown>;
  writProbe(keys: string[], args: string[]): Promise<unknown>;
  hGet(key: string, field: string): Promise<unknown>;
  exists(key: string): Promise<unknown>;
  lRange(key: string, start: number, stop: number): Promise<unknown>;
  lIndex(key: string, index: number): Promise<unknown>;
  lLen(key: string): Promise<unknown>;
  xRange(key: string, start: string, end: string, options?: { COUNT?: number }): Promise<unknown>;
  zRange(
    key: string,
    min: string,
    max: string,
    options?: { BY?: "SCORE" | "LEX"; LIMIT?: { offset: number; count: number } },
  ): Promise<unknown>;
  /**
   * A new connection with the same options, for the blocking stream reader:
   * a blocked read holds its connection, so it never shares the one commands use.
   */
  duplicate(): RedisStreamReader;
  /** Waits for pending replies, then closes. */
  close(): Promise<void>;
}

/** Where Redis Sentinel runs, and which primary it watches. */
export interface RedisSentinelOptions {
  /** The name Sentinel knows the primary by (`sentinel monitor <name> …`). */
  name: string;
  /** Sentinels to ask, as `redis://host:port` URLs; a few are enough. */
  nodes: readonly string[];
  username?: string;
  password?: string;
}

/** TLS for the connection to Redis. Certificates are always verified against `ca` (or the system's). */
export interface RedisTlsOptions {
  /** PEM CA bundle to trust instead of the system's. */
  ca?: string;
  /** PEM client certificate, for servers that require mutual TLS. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** Name to verify the server's certificate against, when it differs from the host. */
  servername?: string;
}

export interface RedisConnectOptions {
  /**
   * A standalone server: `redis://host:port` or `rediss://host:port` (TLS), with an
   * optional `/db`. Exactly one of `url`, `clusterNodes` and `sentinel`.
   */
  url?: string;
  /** Seed nodes of a Redis Cluster, as `redis://` or `rediss://` URLs; the rest are discovered. */
  clusterNodes?: readonly string[];
  /**
   * A primary found through Redis Sentinel, which follows its failovers. `nodes`
   * are Sentinels as `redis://host:port` URLs; `username` and `password` are
   * the Sentinels' own, when they require one (the primary's are the options below).
   */
  sentinel?: RedisSentinelOptions;
  /** ACL user name; overrides one in a URL. */
  username?: string;
  /** Password (ACL or `requirepass`); overrides one in a URL. Never logged. */
  password?: string;
  /**
   * TLS settings (CA, client certificate); the URLs must then be `rediss://`,
   * which alone turns TLS on with the system's CAs. Certificates are always verified.
   */
  tls?: boolean | RedisTlsOptions;
  /** How long the first connection may take before `connectRedis` fails (default 10,000 ms). */
  connectTimeoutMs?: number;
  /** Longest pause between reconnection attempts (default 2,000 ms). */
  maxReconnectDelayMs?: number;
  /**
   * How often a standalone server's connection is checked, and how long one
   * check may take (default 5,000 ms). A connection whose check gets no answer
   * in time (it died without a reset: the server's host vanished, a firewall
   * forgot it) or answers that the server is now a read-only replica (a
   * failover moved the address to another server) is closed and made again,
   * as when it drops. Sentinel and Cluster follow their primaries themselves.
   */
  healthCheckMs?: number;
  /**
   * The longest a blocking command sent on this connection waits (the BLOCK of
   * an XREADGROUP; default 0, none). The check waits behind such a command,
   * so it allows this much more before it takes the connection for dead.
   */
  blockingMs?: number;
  /** `CLIENT SETNAME`, to tell writ's connections apart in `CLIENT LIST` (default "writ"). */
  clientName?: string;
  /**
   * Keep node-redis's own timer on every command (default true). A caller that
   * bounds each of its operations itself (`withDeadline`: the store, the rate
   * limiter, notification state, console sessions, the change feed) turns it off
   * and saves a timer and an `AbortSignal` per command.
   */
  commandTimeouts?: boolean;
  logger: Logger;
}

/** A connected node-redis client or cluster, with the store's scripts registered. */
export type RedisStoreClient = RedisStoreConnection;

const URL_SCHEME = /^rediss?:\/\//;
const CLIENT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * A `redis://` or `rediss://` URL split into the URL without credentials and
 * the credentials it held; errors never echo it, since it may hold a password.
 */
function parseRedisUrl(
  url: string,
  what: string,
): { url: string; tls: boolean; username?: string; password?: string } {
  if (!URL_SCHEME.test(url)) throw new TypeError(`${what} must be a redis:// or rediss:// URL`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${what} is not a valid URL`);
  }
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(parsed.username);
    password = decodeURIComponent(parsed.password);
  } catch {
    throw new TypeError(`${what} has malformed credentials`);
  }
  parsed.username = "";
  parsed.password = "";
  return {
    url: parsed.toString(),
    tls: parsed.protocol === "rediss:",
    ...(username !== "" ? { username } : {}),
    ...(password !== "" ? { password } : {}),
  };
}

/** The error's kind for logs (`ECONNREFUSED`, `ClientOfflineError`), never its text: it may name hosts or carry replies. */
export function errorKind(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
    // A Redis error reply starts with its code (WRONGPASS, NOAUTH, NOPERM, LOADING):
    // a fixed word, unlike the rest of the reply.
    const replyCode =
      error instanceof ErrorReply ? /^([A-Z][A-Z_]{1,30})\b/.exec(error.message) : null;
    return replyCode?.[1] ?? error.name;
  }
  return typeof error;
}

/**
 * Exponential backoff with jitter, never giving up: a Redis that comes back is
 * used again without a restart. Meanwhile commands fail at once
 * (`disableOfflineQueue`), so callers get `store_unavailable` instead of waiting.
 */
function reconnectStrategy(maxDelayMs: number) {
  return (retries: number): number => {
    const base = Math.min(maxDelayMs, 50 * 2 ** Math.min(retries, 16));
    return Math.round(base / 2 + Math.random() * (base / 2));
  };
}

/**
 * Creates and connects a node-redis client (standalone, Sentinel) or cluster with the
 * store's scripts registered, fail-fast commands while disconnected, automatic
 * reconnection with backoff, and connection errors logged once per outage
 * (their kind only). Rejects with `store_unavailable` if the first connection
 * does not succeed within `connectTimeoutMs`; its `details.cause` is the kind of
 * the first error seen (`ECONNREFUSED`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, …),
 * so that a caller can say what went wrong without quoting Redis.
 */
export async function connectRedis(options: RedisConnectOptions): Promise<RedisStoreClient> {
  const { logger } = options;
  const targets = [options.url, options.clusterNodes, options.sentinel];
  if (targets.filter((t) => t !== undefined).length !== 1) {
    throw new TypeError("connectRedis needs exactly one of url, clusterNodes and sentinel");
  }
  const what =
    options.url !== undefined
      ? "Redis url"
      : options.clusterNodes !== undefined
        ? "Redis cluster node"
        : "Redis Sentinel node";
  const given =
    options.url !== undefined
      ? [options.url]
      : (options.clusterNodes ?? options.sentinel?.nodes ?? []);
  if (given.length === 0 || given.length > 64) {
    throw new TypeError("connectRedis needs 1-64 cluster nodes or Sentinels");
  }
  const nodeUrls = given.map((url) => parseRedisUrl(url, what));
  const sentinelNodes =
    options.sentinel === undefined
      ? undefined
      : nodeUrls.map(({ url }) => {
          const { hostname, port } = new URL(url);
          return {
            host: hostname.replace(/^\[|\]$/g, ""),
            port: port === "" ? 26379 : Number(port),
          };
        });
  if (options.sentinel !== undefined && !CLIENT_NAME.test(options.sentinel.name)) {
    throw new TypeError("Redis sentinel.name must be 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  const schemes = new Set(nodeUrls.map((n) => n.tls));
  if (schemes.size > 1) throw new TypeError(`${what}s must all be redis:// or all rediss://`);
  const tlsByScheme = nodeUrls[0]?.tls ?? false;
  if (!tlsByScheme && options.tls !== undefined && options.tls !== false) {
    throw new TypeError("Redis TLS needs rediss:// URLs");
  }
  // Options win over credentials in a URL; either way they leave the URL.
  const inUrls = options.sentinel === undefined ? nodeUrls : [];
  const username = options.username ?? inUrls.find((n) => n.username)?.username;
  const password = options.password ?? inUrls.find((n) => n.password)?.password;
  const clientName = options.clientName ?? "writ";
  if (!CLIENT_NAME.test(clientName)) {
    throw new TypeError("Redis clientName must be 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const maxReconnectDelayMs = options.maxReconnectDelayMs ?? 2_000;
  const healthCheckMs = options.healthCheckMs ?? 5_000;
  for (const [name, value] of [
    ["connectTimeoutMs", connectTimeoutMs],
    ["maxReconnectDelayMs", maxReconnectDelayMs],
    ["healthCheckMs", healthCheckMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1 || value > 600_000) {
      throw new TypeError(`Redis ${name} must be an integer of 1-600000 ms`);
    }
  }
  const blockingMs = options.blockingMs ?? 0;
  if (!Number.isSafeInteger(blockingMs) || blockingMs < 0 || blockingMs > 600_000) {
    throw new TypeError("Redis blockingMs must be an integer of 0-600000 ms");
  }
  const tls =
    options.tls !== undefined && options.tls !== false ? options.tls : tlsByScheme || undefined;
  const socket = {
    connectTimeout: Math.min(connectTimeoutMs, 5_000),
    keepAlive: true,
    reconnectStrategy: reconnectStrategy(maxReconnectDelayMs),
    ...(tls === undefined
      ? { tls: false as const }
      : {
          tls: true as const,
          // Certificates are always verified: there is no option to turn that off.
          rejectUnauthorized: true,
          ...(tls === true ? {} : tls),
        }),
  };
  const common = {
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    name: clientName,
    // Fail closed and fast: while the connection is down a command is refused
    // at once (503) rather than queued until Redis comes back.
    disableOfflineQueue: true,
    commandsQueueMaxLength: 10_000,
    // 0 turns node-redis's per-command timer off.
    ...(options.commandTimeouts === false ? { commandOptions: { timeout: 0 } } : {}),
  };
  function createNodeRedis(): RedisStoreConnection {
    if (options.url !== undefined) {
      return createClient({
        url: nodeUrls[0]?.url as string,
        ...common,
        socket,
        scripts: redisStoreScripts,
      });
    }
    if (options.clusterNodes !== undefined) {
      return createCluster({
        rootNodes: nodeUrls.map(({ url }) => ({ url })),
        defaults: { ...common, socket },
        // The cluster runs commands with its own options, not its nodes'.
        ...("commandOptions" in common ? { commandOptions: common.commandOptions } : {}),
        scripts: redisStoreScripts,
      });
    }
    const sentinel = options.sentinel as RedisSentinelOptions;
    return createSentinel({
      name: sentinel.name,
      sentinelRootNodes: sentinelNodes ?? [],
      nodeClientOptions: { ...common, socket },
      sentinelClientOptions: {
        ...(sentinel.username !== undefined ? { username: sentinel.username } : {}),
        ...(sentinel.password !== undefined ? { password: sentinel.password } : {}),
        socket,
      },
      passthroughClientErrorEvents: true,
      scripts: redisStoreScripts,
    });
  }

  let client: RedisStoreConnection;
  try {
    client = createNodeRedis();
  } catch {
    // node-redis may quote its options (URLs, hence passwords) in its errors.
    throw new TypeError("Redis connection options are not valid");
  }

  let down = false;
  /** Why the first connection fails, by kind only (e.g. a certificate that does not verify). */
  let firstError: string | undefined;
  function lost(kind: string): void {
    if (down) return;
    down = true;
    logger.warn("redis connection lost; reconnecting", { error: kind });
  }
  client.on("error", (error: unknown) => {
    firstError ??= errorKind(error);
    lost(errorKind(error));
  });
  client.on("ready", () => {
    if (!down) return;
    down = false;
    logger.info("redis connection restored");
  });

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), connectTimeoutMs);
      }),
    ]);
  } catch (error) {
    client.destroy();
    const cause =
      firstError ??
      (error instanceof Error && error.message !== "timeout" ? errorKind(error) : undefined);
    throw new WritError(
      "store_unavailable",
      "Could not connect to Redis.",
      cause !== undefined ? { cause } : undefined,
    );
  } finally {
    clearTimeout(timer);
  }
  if (options.url !== undefined) {
    watchConnection(client, healthCheckMs, healthCheckMs + blockingMs, connectTimeoutMs, lost);
  }
  return client;
}

/**
 * Checks a standalone server's connection every `intervalMs` with a writing
 * no-op, and makes it again when the check gets no answer within `answerMs`
 * (more than `intervalMs` when a blocking command may hold the answer back)
 * or is refused as READONLY. node-redis reconnects only when its socket
 * reports an error: a connection that died without a reset would hold every
 * command for as long as the kernel retransmits (about 15 minutes), and one to
 * a primary that a failover turned into a replica stays open for good, while
 * the address writ was given already names a server that would answer.
 * Stops once the client is closed by its owner.
 */
function watchConnection(
  client: RedisStoreConnection,
  intervalMs: number,
  answerMs: number,
  connectTimeoutMs: number,
  lost: (kind: string) => void,
): void {
  let remaking = false;
  async function check(): Promise<void> {
    if (remaking || !client.isReady) return;
    let reason: string | undefined;
    try {
      await withDeadline(answerMs, client.writProbe([], []));
    } catch (error) {
      if (error instanceof OperationTimeout) reason = "no answer";
      else if (errorKind(error) === "READONLY") reason = "READONLY";
    }
    if (reason === undefined || remaking || !client.isReady) return;
    if (!client.isOpen) {
      // Its owner is closing it and waits for replies: a connection that gives
      // none is ended, so that the close ends, and no other is made.
      if (reason === "no answer") client.destroy();
      return;
    }
    remaking = true;
    lost(reason);
    try {
      for (;;) {
        // Pending commands fail as on a dropped connection; their callers answer 503.
        client.destroy();
        const connecting = client.connect();
        try {
          // The client retries on its own until it connects, but a new
          // connection that goes silent during its handshake would wait for ever.
          await withDeadline(connectTimeoutMs, connecting);
          return;
        } catch {
          connecting.catch(() => {});
          // Closed by its owner meanwhile: nothing more to make.
          if (!client.isOpen) return;
        }
      }
    } finally {
      remaking = false;
    }
  }
  let checking = false;
  const timer = setInterval(() => {
    if (!client.isOpen && !remaking) {
      clearInterval(timer);
      return;
    }
    if (checking) return;
    checking = true;
    void check().finally(() => {
      checking = false;
    });
  }, intervalMs);
  timer.unref();
}
