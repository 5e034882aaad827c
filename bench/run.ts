import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createKeyRing } from "../src/adapters/jwt-keys.js";
import { generateKey, hashKey } from "../src/adapters/key-identity.js";
import { cpuSeconds, ownCpuSeconds, treeCpu } from "./cpu.js";
import { BenchConnection } from "./http-client.js";
import {
  type BareStackFigures,
  closedLoop,
  measureBareStack,
  measureHttpEcho,
  measureJose,
  measureRedisScript,
  S3_READ,
} from "./limits.js";
import { round, summarize } from "./stats.js";

// `npm run bench`: writ's issue, consume and approval wake-up paths on a real
// redis-server on loopback, with the limits measured in the same run. Figures
// are printed, never asserted. See docs/performance.md.

const ROOT = resolve(import.meta.dirname, "..");
const BIN = join(ROOT, "dist/cli/bin.js");
const POLICIES = join(ROOT, "policies");

const { values: options } = parseArgs({
  options: {
    seconds: { type: "string", default: "8" },
    clients: { type: "string", default: "50" },
    replicas: { type: "string", default: "1" },
    /** Worker processes per replica (server.workers); 1 runs no workers. */
    workers: { type: "string", default: "1" },
    "wake-samples": { type: "string", default: "300" },
    appendfsync: { type: "string", default: "everysec" },
    /** Skip measuring the limits (for quick comparisons of writ alone). */
    "skip-limits": { type: "boolean", default: false },
    /** Write a V8 CPU profile of each writ process into this directory. */
    profile: { type: "string" },
    /** Extra Node.js options for the writ processes, space-separated (e.g. "--max-semi-space-size=32"). */
    "node-options": { type: "string", default: "" },
    /**
     * Also measure single calls alone (the liveness probe, an authenticated read,
     * a create without its collect): what one call of each kind costs writ.
     */
    calls: { type: "boolean", default: false },
  },
});
const SECONDS = Number(options.seconds);
const CLIENTS = Number(options.clients);
const REPLICAS = Number(options.replicas);
const WAKE_SAMPLES = Number(options["wake-samples"]);
const WORKERS = Number(options.workers);
if (
  ![SECONDS, CLIENTS, REPLICAS, WAKE_SAMPLES, WORKERS].every((n) => Number.isInteger(n) && n > 0)
) {
  throw new TypeError(
    "--seconds, --clients, --replicas, --workers and --wake-samples take positive integers",
  );
}
if (!["everysec", "always"].includes(options.appendfsync)) {
  throw new TypeError("--appendfsync is everysec or always");
}

/** The recent output of each process started, for error reports. */
const outputs = new Map<ChildProcessWithoutNullStreams, () => string>();

const log = (line: string) => process.stderr.write(`${line}\n`);

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolvePort(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

/** Spawns `command` and resolves once its output matches `ready`. */
function startProcess(
  command: string,
  args: readonly string[],
  ready: RegExp,
): Promise<{ child: ChildProcessWithoutNullStreams; match: RegExpMatchArray }> {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  let output = "";
  outputs.set(child, () => output);
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} did not start:\n${output}`));
    }, 30_000);
    let started = false;
    const onData = (chunk: Buffer) => {
      // Only the last few KiB are kept: enough to show why a process failed.
      output = (output + chunk.toString()).slice(-8192);
      const match = started ? null : output.match(ready);
      if (match !== null) {
        started = true;
        clearTimeout(timer);
        resolveStart({ child, match });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    });
  });
}

function stopProcess(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(force);
      resolveStop();
    });
    child.kill("SIGTERM");
  });
}

const CUSTOMERS_EXPORT = JSON.stringify({
  action: "db:export",
  resource: "db://prod/customers",
  audience: "billing-api",
  reason: "benchmark",
});

/** CPU seconds used so far by writ (every replica and its workers), Redis and this generator. */
interface CpuReading {
  readonly writ: number;
  readonly redis: number;
  readonly generator: number;
  /** CPU seconds of each writ process's main thread, by pid. */
  readonly mainThreads: ReadonlyMap<number, number>;
}

async function readCpu(writPids: readonly number[], redisPid: number): Promise<CpuReading> {
  let writ = 0;
  const mainThreads = new Map<number, number>();
  for (const pid of writPids) {
    const tree = await treeCpu(pid);
    writ += tree.seconds;
    for (const [thread, seconds] of tree.mainThreads) mainThreads.set(thread, seconds);
  }
  return { writ, redis: await cpuSeconds(redisPid), generator: ownCpuSeconds(), mainThreads };
}

/** CPU per operation between two readings, in microseconds, as a line of the report. */
function cpuLine(
  before: CpuReading,
  after: CpuReading,
  operations: number,
  seconds: number,
): string {
  const per = (key: "writ" | "redis" | "generator") =>
    round(((after[key] - before[key]) * 1e6) / operations, 0);
  const busy =
    (after.writ - before.writ + after.redis - before.redis + after.generator - before.generator) /
    seconds;
  // The JavaScript event loop of a writ process runs on one core: its share of
  // that core says whether it, rather than the machine, is what limits the rate.
  let busiest = 0;
  for (const [pid, end] of after.mainThreads) {
    busiest = Math.max(busiest, (end - (before.mainThreads.get(pid) ?? end)) / seconds);
  }
  return `CPU per operation: writ ${per("writ")} µs, Redis ${per("redis")} µs, load generator ${per("generator")} µs; ${round(busy, 2)} cores busy; busiest writ main thread ${round(100 * busiest, 0)}% of a core (${round((busiest * seconds * 1e6) / operations, 0)} µs per operation)`;
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), "writ-bench-"));
  const children: ChildProcessWithoutNullStreams[] = [];
  try {
    const redisPort = await freePort();
    const redis = await startProcess(
      "redis-server",
      [
        "--port",
        String(redisPort),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        options.appendfsync,
        "--logfile",
        "",
      ],
      /Ready to accept connections/,
    );
    children.push(redis.child);

    const keys: Record<string, string> = {};
    const keyFor = (id: string, kind: Parameters<typeof generateKey>[0]) => {
      keys[id] = generateKey(kind);
      return hashKey(keys[id]);
    };
    const keysFile = join(dir, "keys", "jwt.json");
    await createKeyRing(keysFile, "EdDSA");
    const config = {
      policies: { dir: POLICIES, watch: false },
      jwt: { keys_file: keysFile },
      server: { port: 0, workers: WORKERS },
      metrics: { enabled: true, port: 0 },
      redis: { url: `redis://127.0.0.1:${redisPort}` },
      // On, as in production, and far above the load: the limiter's round trip is measured too.
      rate_limits: { requests_per_minute_per_agent: 1_000_000, burst: 100_000 },
      identities: {
        agents: [{ id: "bench-agent", owner: "alice", key_sha256: keyFor("bench-agent", "agent") }],
        reviewers: ["bob", "carol"].map((id) => ({
          id,
          groups: ["data-owners"],
          key_sha256: keyFor(id, "reviewer"),
        })),
        auditors: [{ id: "dana", key_sha256: keyFor("dana", "auditor") }],
        resource_servers: [
          {
            id: "billing-api",
            audience: "billing-api",
            key_sha256: keyFor("billing-api", "resource_server"),
          },
        ],
      },
    };
    const urls: string[] = [];
    const writPids: number[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const path = join(dir, `writ-${i}.json`);
      await writeFile(path, JSON.stringify({ ...config, data_dir: join(dir, `replica-${i}`) }), {
        mode: 0o600,
      });
      const writ = await startProcess(
        process.execPath,
        [
          ...options["node-options"].split(" ").filter((o) => o !== ""),
          ...(options.profile !== undefined
            ? ["--cpu-prof", `--cpu-prof-dir=${resolve(options.profile)}`]
            : []),
          BIN,
          "serve",
          "--config",
          path,
          "--quiet",
        ],
        /listening on (http:\/\/\S+)/,
      );
      children.push(writ.child);
      urls.push(writ.match[1] as string);
      writPids.push(writ.child.pid as number);
    }
    log(
      `writ: ${REPLICAS} replica(s) ${urls.join(" ")}; redis 127.0.0.1:${redisPort} (appendfsync ${options.appendfsync})`,
    );

    // The limits, measured first while writ is idle.
    log("measuring limits: node:http echo, jose EdDSA, Redis EVALSHA, the bare stack ...");
    const skip = options["skip-limits"];
    const echoRps = skip ? Number.NaN : await measureHttpEcho(CLIENTS, 3000);
    const jose = skip ? { sign: Number.NaN, verify: Number.NaN } : await measureJose(1500);
    const redisRps = skip ? Number.NaN : await measureRedisScript(redisPort, 200_000);
    const bare: BareStackFigures = skip
      ? { rps: Number.NaN, serverUs: Number.NaN, redisUs: Number.NaN }
      : await measureBareStack(
          { url: `redis://127.0.0.1:${redisPort}`, pid: redis.child.pid as number },
          CLIENTS,
          4000,
        );

    const agent = keys["bench-agent"] as string;
    const server = keys["billing-api"] as string;
    const tokens: string[] = [];
    const issueLatencies: number[] = [];
    const issueStep = (record: boolean) => async (c: BenchConnection) => {
      let t = performance.now();
      const created = await c.request("POST", "/v1/requests", agent, S3_READ);
      if (created.status !== 201) throw new Error(`create: ${created.status} ${created.body}`);
      const id = (JSON.parse(created.body) as { id: string }).id;
      const t1 = performance.now();
      if (record) issueLatencies.push(t1 - t);
      t = t1;
      const collected = await c.request("POST", `/v1/requests/${id}/credential`, agent);
      if (collected.status !== 200)
        throw new Error(`collect: ${collected.status} ${collected.body}`);
      if (record) issueLatencies.push(performance.now() - t);
      tokens.push(
        (JSON.parse(collected.body) as { credential: { token: string } }).credential.token,
      );
      return 1;
    };

    log("warming up ...");
    await closedLoop(urls, CLIENTS, 1500, issueStep(false));
    const callLines: string[] = [];
    if (options.calls) {
      const first = await BenchConnection.open(urls[0] as string);
      const created = await first.request("POST", "/v1/requests", agent, S3_READ);
      first.close();
      const readPath = `/v1/requests/${(JSON.parse(created.body) as { id: string }).id}`;
      const calls: [string, string, string, string | undefined, string | undefined, number][] = [
        ["GET /healthz", "GET", "/healthz", undefined, undefined, 200],
        ["GET /v1/requests/{id}", "GET", readPath, agent, undefined, 200],
        ["POST /v1/requests alone", "POST", "/v1/requests", agent, S3_READ, 201],
      ];
      for (const [name, method, path, key, body, expected] of calls) {
        log(`single calls: ${name}, ${CLIENTS} clients for ${SECONDS} s ...`);
        const before = await readCpu(writPids, redis.child.pid as number);
        const run = await closedLoop(urls, CLIENTS, SECONDS * 1000, async (c) => {
          const res = await c.request(method, path, key, body);
          if (res.status !== expected) throw new Error(`${name}: ${res.status} ${res.body}`);
          return 1;
        });
        const after = await readCpu(writPids, redis.child.pid as number);
        callLines.push(
          `  ${name.padEnd(26)} ${round(run.operations / run.seconds, 0)}/s`,
          `  ${"".padEnd(26)} ${cpuLine(before, after, run.operations, run.seconds)}`,
        );
      }
    }

    log(`issue path: ${CLIENTS} clients for ${SECONDS} s ...`);
    tokens.length = 0;
    const redisPid = redis.child.pid as number;
    const issueCpuBefore = await readCpu(writPids, redisPid);
    const issue = await closedLoop(urls, CLIENTS, SECONDS * 1000, issueStep(true));
    const issueCpu = cpuLine(
      issueCpuBefore,
      await readCpu(writPids, redisPid),
      issue.operations,
      issue.seconds,
    );
    const issueRps = issue.operations / issue.seconds;
    const issueLatency = summarize(issueLatencies);

    log(`consume path: ${CLIENTS} clients, ${tokens.length} tokens ...`);
    const consumeLatencies: number[] = [];
    let next = 0;
    const consumeCpuBefore = await readCpu(writPids, redisPid);
    const consume = await closedLoop(urls, CLIENTS, SECONDS * 1000, async (c) => {
      const token = tokens[next++];
      if (token === undefined) return -1;
      const t = performance.now();
      const res = await c.request("POST", "/v1/tokens/consume", server, JSON.stringify({ token }));
      if (res.status !== 200) throw new Error(`consume: ${res.status} ${res.body}`);
      consumeLatencies.push(performance.now() - t);
      return 1;
    });
    const consumeCpu = cpuLine(
      consumeCpuBefore,
      await readCpu(writPids, redisPid),
      consume.operations,
      consume.seconds,
    );
    const consumeRps = consume.operations / consume.seconds;
    const consumeLatency = summarize(consumeLatencies);

    log(`approval wake-up: ${WAKE_SAMPLES} samples ...`);
    const wakeLatencies: number[] = [];
    const pollUrl = urls[0] as string;
    const approveUrl = urls[urls.length - 1] as string;
    const wakeOnce = async () => {
      const [agentConn, reviewerConn] = await Promise.all([
        BenchConnection.open(pollUrl),
        BenchConnection.open(approveUrl),
      ]);
      try {
        const created = await agentConn.request("POST", "/v1/requests", agent, CUSTOMERS_EXPORT);
        const id = (JSON.parse(created.body) as { id: string }).id;
        await reviewerConn.request("POST", `/v1/requests/${id}/approve`, keys.bob, "{}");
        const poll = agentConn.request("GET", `/v1/requests/${id}?wait=30&while=pending`, agent);
        // Let the poll reach the server and park before the deciding approval.
        await new Promise((r) => setImmediate(r));
        const t = performance.now();
        await reviewerConn.request("POST", `/v1/requests/${id}/approve`, keys.carol, "{}");
        const woken = await poll;
        wakeLatencies.push(performance.now() - t);
        if (!woken.body.includes('"approved"')) throw new Error(`wake: ${woken.body}`);
      } finally {
        agentConn.close();
        reviewerConn.close();
      }
    };
    for (let done = 0; done < WAKE_SAMPLES; done += 10) {
      await Promise.all(Array.from({ length: 10 }, wakeOnce));
    }
    const wake = summarize(wakeLatencies);

    const issueLimit = Math.min(echoRps / 2, jose.sign);
    // Consume checks the token's recorded digest, not its signature: its limit is HTTP's.
    const consumeLimit = echoRps;
    const lines = [
      "",
      `writ benchmark (${REPLICAS} writ replica(s)${WORKERS > 1 ? ` of ${WORKERS} workers each` : ""}, ${CLIENTS} clients, Redis appendfsync ${options.appendfsync})`,
      "",
      "limits, measured in this run:",
      `  node:http JSON echo          ${round(echoRps, 0)} req/s (${CLIENTS} connections)`,
      `  jose EdDSA sign (one core)   ${round(jose.sign, 0)} /s`,
      `  jose EdDSA verify (one core) ${round(jose.verify, 0)} /s`,
      `  Redis EVALSHA round trip     ${round(redisRps, 0)} /s (redis-benchmark, 50 clients)`,
      `  bare stack issue path        ${round(bare.rps, 0)} credentials/s (${CLIENTS} clients; Hono, a node-redis script per call, a jose signature; none of writ's work)`,
      `                               CPU per credential: server ${round(bare.serverUs, 0)} µs, Redis ${round(bare.redisUs, 0)} µs`,
      "",
      `issue path    ${round(issueRps, 0)} credentials/s (${round(issueRps * 2, 0)} HTTP req/s); per call p50 ${round(issueLatency.p50, 2)} ms, p99 ${round(issueLatency.p99, 2)} ms; ${round((100 * issueRps) / issueLimit, 0)}% of its limit (${round(issueLimit, 0)}/s)`,
      `              ${issueCpu}`,
      `              ${round((100 * issueRps) / bare.rps, 0)}% of the bare stack's rate`,
      `consume path  ${round(consumeRps, 0)} consumes/s; p50 ${round(consumeLatency.p50, 2)} ms, p99 ${round(consumeLatency.p99, 2)} ms; ${round((100 * consumeRps) / consumeLimit, 0)}% of its limit (${round(consumeLimit, 0)}/s)`,
      `              ${consumeCpu}`,
      `approval wake-up  p50 ${round(wake.p50, 2)} ms, p99 ${round(wake.p99, 2)} ms (${wake.count} samples)`,
      ...(callLines.length > 0
        ? ["", "single calls, each alone in a closed loop:", ...callLines]
        : []),
      "",
    ];
    process.stdout.write(lines.join("\n"));
    process.stdout.write(
      `${JSON.stringify({
        issue_rps: round(issueRps, 0),
        issue_p99_ms: round(issueLatency.p99, 2),
        consume_rps: round(consumeRps, 0),
        consume_p99_ms: round(consumeLatency.p99, 2),
        wake_p99_ms: round(wake.p99, 2),
        limits: {
          http_echo_rps: round(echoRps, 0),
          jose_sign_per_s: round(jose.sign, 0),
          jose_verify_per_s: round(jose.verify, 0),
          redis_evalsha_per_s: round(redisRps, 0),
          bare_stack_issue_rps: round(bare.rps, 0),
        },
      })}\n`,
    );
  } catch (error) {
    for (const child of children)
      log(`--- ${child.spawnargs.slice(0, 3).join(" ")}\n${outputs.get(child)?.()}`);
    throw error;
  } finally {
    for (const child of children.reverse()) await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
