import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createClient } from "redis";
import { afterAll, beforeAll } from "vitest";
import { connectRedis, type RedisStoreClient } from "../../src/adapters/redis/connection.js";
import { silentLogger } from "../../src/ports/logger.js";
import { waitFor } from "./wait.js";

const run = promisify(execFile);

/** Runs one command on the server at `url` over a connection of its own, and returns the reply. */
export async function redisCommand(url: string, command: readonly string[]): Promise<unknown> {
  const client = await createClient({ url })
    .on("error", () => {})
    .connect();
  try {
    return await client.sendCommand([...command]);
  } finally {
    client.destroy();
  }
}

/** The Redis configuration writ ships, whose AOF settings tests can run with. */
export const SHIPPED_REDIS_CONF = resolve(import.meta.dirname, "../../infra/redis/redis.conf");

/** The directives of the shipped configuration that decide what the AOF keeps. */
const AOF_DIRECTIVE =
  /^(appendonly|appendfsync|appenddirname|appendfilename|no-appendfsync-on-rewrite|auto-aof-rewrite-percentage|auto-aof-rewrite-min-size|aof-load-truncated|aof-use-rdb-preamble|aof-timestamp-enabled)$/;

/** Every AOF directive of `infra/redis/redis.conf`, by name, as written there. */
export async function shippedAofSettings(): Promise<Record<string, string>> {
  const settings: Record<string, string> = {};
  for (const line of (await readFile(SHIPPED_REDIS_CONF, "utf8")).split("\n")) {
    const match = /^([a-z-]+)\s+(.+?)\s*$/.exec(line);
    if (match === null || !AOF_DIRECTIVE.test(match[1] as string)) continue;
    settings[match[1] as string] = (match[2] as string).replace(/^"(.*)"$/, "$1");
  }
  if (settings.appendonly !== "yes") throw new Error(`${SHIPPED_REDIS_CONF} does not turn AOF on`);
  return settings;
}

/** How long a redis-server may take to say it is ready, or a cluster to agree on its slots. */
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

export interface RedisServerOptions {
  /** Run with `--requirepass`. */
  password?: string;
  /**
   * Write an append-only file so a restart keeps the data: `true` fsyncs it on
   * every write (`appendfsync always`); `"shipped"` takes every AOF setting of
   * `infra/redis/redis.conf` as it is (`appendfsync everysec`).
   */
  appendOnly?: boolean | "shipped";
  /** Start as a cluster node (`--cluster-enabled yes`). */
  cluster?: boolean;
  /** Serve TLS only (`--port 0 --tls-port …`), with these PEM files. */
  tls?: RedisTlsFiles;
  /** Start as a replica of this server (`--replicaof`), which must be plain TCP without a password. */
  replicaOf?: RedisServer;
}

export interface RedisTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that client certificates must chain to. */
  readonly caFile: string;
  /** `tls-auth-clients`: whether clients must show a certificate (default "no"). */
  readonly authClients?: "yes" | "no" | "optional";
}

/** A real redis-server on a free loopback port, with its own data directory. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (`rediss://` with TLS), with the password when there is one. */
  readonly url: string;
  readonly dir: string;
  /** Whether the process is running. */
  running(): boolean;
  /** Stops the process (SIGTERM, or SIGKILL for a crash), keeping its data directory. */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  freeze(): void;
  /** Lets a frozen process run again (SIGCONT). */
  thaw(): void;
  /** Stops the process and removes its data directory. */
  dispose(): Promise<void>;
}

/** Every process this module started and not yet disposed, killed on exit if a test forgot. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** A port nothing listens on now, from the kernel's ephemeral range. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port"));
        else resolve(address.port);
      });
    });
  });
}

/** Spawns redis-server and resolves once it logs `readyLine`. */
function spawnRedis(
  args: readonly string[],
  readyLine = "Ready to accept connections",
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let output = "";
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      live.delete(child);
      reject(new Error(`redis-server ${reason}:\n${output.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail("did not become ready in time"), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(readyLine)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.off("exit", onExit);
        // Keep draining the pipes so a chatty server never blocks on a full one.
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    const onExit = (code: number | null) => fail(`exited early (code ${code})`);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
    child.once("error", (error) => fail(error.message));
  });
}

function stopProcess(child: ChildProcess, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child);
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    // A frozen process would never handle SIGTERM.
    child.kill("SIGCONT");
    child.once("exit", () => {
      clearTimeout(timer);
      live.delete(child);
      resolve();
    });
    child.kill(signal);
  });
}

/**
 * Starts a real redis-server bound to 127.0.0.1 on a free port, with an empty
 * temporary data directory. RDB snapshots are off; `appendOnly` turns AOF on.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const aof =
    options.appendOnly === "shipped"
      ? Object.entries(await shippedAofSettings()).flatMap(([name, value]) => [`--${name}`, value])
      : options.appendOnly
        ? ["--appendonly", "yes", "--appendfsync", "always"]
        : ["--appendonly", "no"];
  const dir = await mkdtemp(join(tmpdir(), "writ-redis-"));
  let lastError: unknown;
  // A port found free can be taken by someone else before redis binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const clusterPort = options.cluster ? await freePort() : undefined;
    const { tls } = options;
    const args = [
      ...(tls === undefined
        ? ["--port", String(port)]
        : [
            "--port",
            "0",
            "--tls-port",
            String(port),
            "--tls-cert-file",
            tls.certFile,
            "--tls-key-file",
            tls.keyFile,
            "--tls-ca-cert-file",
            tls.caFile,
            "--tls-auth-clients",
            tls.authClients ?? "no",
          ]),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      ...aof,
      "--daemonize",
      "no",
      "--logfile",
      "",
      ...(options.password !== undefined ? ["--requirepass", options.password] : []),
      ...(options.replicaOf !== undefined
        ? ["--replicaof", "127.0.0.1", String(options.replicaOf.port)]
        : []),
      ...(clusterPort !== undefined
        ? [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            String(clusterPort),
            "--cluster-config-file",
            join(dir, "nodes.conf"),
            "--cluster-node-timeout",
            "2000",
          ]
        : []),
    ];
    try {
      let child = await spawnRedis(args);
      const auth = options.password !== undefined ? `:${options.password}@` : "";
      return {
        port,
        url: `${tls === undefined ? "redis" : "rediss"}://${auth}127.0.0.1:${port}`,
        dir,
        running: () => child.exitCode === null && child.signalCode === null,
        stop: (signal = "SIGTERM") => stopProcess(child, signal),
        async restart() {
          await stopProcess(child, "SIGTERM");
          child = await spawnRedis(args);
        },
        freeze: () => child.kill("SIGSTOP"),
        thaw: () => child.kill("SIGCONT"),
        async dispose() {
          await stopProcess(child, "SIGKILL");
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/** A Redis Cluster on loopback: its masters, and their replicas if it has any. */
export interface RedisClusterServers {
  readonly nodes: readonly RedisServer[];
  /** `redis://127.0.0.1:<port>` of every node. */
  readonly urls: readonly string[];
  dispose(): Promise<void>;
}

async function clusterInfo(port: number): Promise<string> {
  const { stdout } = await run("redis-cli", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "cluster",
    "info",
  ]);
  return stdout;
}

/**
 * A record in a Redis reply (`XINFO GROUPS`, `SENTINEL REPLICAS`): a flat list
 * of names and values in RESP2, a map in RESP3, or an object once node-redis
 * has transformed it.
 */
export function replyFields(entry: unknown): Record<string, unknown> {
  if (entry instanceof Map) return Object.fromEntries(entry);
  if (!Array.isArray(entry)) return entry as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (let i = 0; i + 1 < entry.length; i += 2) fields[String(entry[i])] = entry[i + 1];
  return fields;
}

/**
 * Resolves once `server` replicates `primary` with its link up: a new replica
 * once it has synced, or the old primary after a failover, which turns into a
 * replica of the new one. Until then a write it takes is lost on its resync
 * (the window every asynchronous failover has).
 */
export async function waitUntilReplicaOf(server: RedisServer, primary: RedisServer): Promise<void> {
  await waitFor(`127.0.0.1:${server.port} to replicate 127.0.0.1:${primary.port}`, async () => {
    const info = String(await redisCommand(server.url, ["INFO", "replication"]));
    return (
      info.includes("role:slave") &&
      info.includes(`master_port:${primary.port}`) &&
      info.includes("master_link_status:up")
    );
  });
}

/** Whether every replica among `nodes` has its link to its master up. */
async function inSync(nodes: readonly RedisServer[]): Promise<boolean> {
  for (const node of nodes) {
    const { stdout } = await run("redis-cli", ["-p", String(node.port), "info", "replication"]);
    if (/role:slave/.test(stdout) && !/master_link_status:up/.test(stdout)) return false;
  }
  return true;
}

/**
 * Starts `masters` cluster nodes and `replicas` replicas of each, joins them
 * with `redis-cli --cluster create` and resolves once every node reports
 * `cluster_state:ok` and knows every other, and every replica is in sync.
 */
export async function startRedisCluster(masters = 3, replicas = 0): Promise<RedisClusterServers> {
  const nodes: RedisServer[] = [];
  const dispose = async () => {
    await Promise.all(nodes.map((n) => n.dispose()));
  };
  try {
    const total = masters * (1 + replicas);
    for (let i = 0; i < total; i++) nodes.push(await startRedisServer({ cluster: true }));
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const infos = await Promise.all(nodes.map((n) => clusterInfo(n.port)));
      if (
        infos.every(
          (info) =>
            /cluster_state:ok/.test(info) &&
            /cluster_known_nodes:(\d+)/.exec(info)?.[1] === String(total),
        ) &&
        (await inSync(nodes))
      )
        break;
      if (Date.now() > deadline) throw new Error(`cluster did not converge:\n${infos.join("\n")}`);
      // Gossip settles in a few hundred milliseconds; ask again shortly, within the deadline.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { nodes, urls: nodes.map((n) => `redis://127.0.0.1:${n.port}`), dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** A Redis Sentinel on loopback watching one primary. */
export interface RedisSentinelServer {
  /** The name it knows the primary by. */
  readonly name: string;
  /** `redis://127.0.0.1:<port>` of the Sentinel. */
  readonly url: string;
  readonly port: number;
  dispose(): Promise<void>;
}

export interface RedisSentinelOptions {
  /** The primary's password (`sentinel auth-pass`). */
  primaryPassword?: string;
  /** The Sentinel's own password (`requirepass`). */
  password?: string;
}

/** Starts a Sentinel (quorum 1) watching `primary`; resolves once it monitors it. */
export async function startRedisSentinel(
  primary: RedisServer,
  name = "writ-primary",
  options: RedisSentinelOptions = {},
): Promise<RedisSentinelServer> {
  const dir = await mkdtemp(join(tmpdir(), "writ-sentinel-"));
  try {
    const port = await freePort();
    // Sentinel rewrites its configuration file, so it gets one of its own.
    const config = join(dir, "sentinel.conf");
    await writeFile(
      config,
      [
        `port ${port}`,
        "bind 127.0.0.1",
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${primary.port} 1`,
        ...(options.primaryPassword !== undefined
          ? [`sentinel auth-pass ${name} ${options.primaryPassword}`]
          : []),
        ...(options.password !== undefined ? [`requirepass ${options.password}`] : []),
        "",
      ].join("\n"),
    );
    const child = await spawnRedis([config, "--sentinel"], "+monitor master");
    return {
      name,
      url: `redis://127.0.0.1:${port}`,
      port,
      async dispose() {
        await stopProcess(child, "SIGKILL");
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A redis-server and two connections to it, as two writ processes would have. */
export async function startRedisWithTwoConnections() {
  const server = await startRedisServer();
  const a = createClient({ url: server.url });
  const b = createClient({ url: server.url });
  await Promise.all([a.connect(), b.connect()]);
  return {
    server,
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      await server.dispose();
    },
  };
}

export type TwoConnections = Awaited<ReturnType<typeof startRedisWithTwoConnections>>;

/**
 * What `start` makes, for every test of the enclosing suite (a `describe`, or
 * the file): made before the first test, closed after the last. Its fields
 * are read inside tests, once it is there.
 */
function perSuite<T extends object>(start: () => Promise<T>, close: (made: T) => Promise<void>): T {
  let made: T | undefined;
  beforeAll(async () => {
    made = await start();
  }, 20_000);
  afterAll(async () => {
    if (made !== undefined) await close(made);
  });
  return new Proxy({} as T, {
    get(_, field) {
      if (made === undefined) throw new Error("Redis is not started yet");
      return Reflect.get(made, field);
    },
  });
}

/** {@link startRedisWithTwoConnections} for every test of the file. */
export function redisWithTwoConnectionsPerFile(): TwoConnections {
  return perSuite(startRedisWithTwoConnections, (started) => started.close());
}

/** A client of no store: it writes what writ's scripts never would (stale index entries, corrupt records). */
const plainClient = (url: string) => createClient({ url }).on("error", () => {});
export type PlainRedisClient = ReturnType<typeof plainClient>;

/**
 * A redis-server for the tests of one suite, with writ's own store client
 * (`client`) and a plain one (`raw`).
 */
export function redisWithPlainClientPerSuite(): {
  readonly server: RedisServer;
  readonly raw: PlainRedisClient;
  readonly client: RedisStoreClient;
} {
  return perSuite(
    async () => {
      const server = await startRedisServer();
      const raw = plainClient(server.url);
      await raw.connect();
      const client = await connectRedis({ url: server.url, logger: silentLogger });
      return { server, raw, client };
    },
    async ({ server, raw, client }) => {
      await raw.close();
      await client.close();
      await server.dispose();
    },
  );
}
