import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateKeyPair, jwtVerify, SignJWT } from "jose";
import { GCRA_SCRIPT } from "../src/adapters/redis-rate-limiter.js";
import { cpuSeconds } from "./cpu.js";
import { BenchConnection } from "./http-client.js";

const run = promisify(execFile);

/** A bare node:http server answering every request with its JSON body, in its own process. */
const ECHO_SERVER = `
import { createServer } from "node:http";
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = chunks.length > 0 ? Buffer.concat(chunks) : Buffer.from("{}");
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));
`;

/** The body of every issue-path request the benchmark sends: the demo policy allows it at once. */
export const S3_READ = JSON.stringify({
  action: "s3:GetObject",
  resource: "arn:aws:s3:::demo-reports/q3.csv",
  audience: "billing-api",
});

/**
 * Starts a server for a limit in its own process (`args` after node's path)
 * and resolves with it and the port it prints once it listens.
 */
async function startLimitServer(
  args: readonly string[],
  what: string,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout?.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      child.once("exit", () => reject(new Error(`${what} exited`)));
    });
    return { child, port };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/** Runs `clients` connections against `url` for `durationMs`, each sending `send` in a loop. */
export async function closedLoop(
  urls: readonly string[],
  clients: number,
  durationMs: number,
  step: (connection: BenchConnection, client: number) => Promise<number>,
): Promise<{ operations: number; seconds: number }> {
  const connections = await Promise.all(
    Array.from({ length: clients }, (_, i) =>
      BenchConnection.open(urls[i % urls.length] as string),
    ),
  );
  const started = performance.now();
  const until = started + durationMs;
  let operations = 0;
  await Promise.all(
    connections.map(async (connection, i) => {
      while (performance.now() < until) {
        const done = await step(connection, i);
        if (done < 0) return;
        operations += done;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const c of connections) c.close();
  return { operations, seconds };
}

/** Requests per second of a bare node:http JSON echo at `clients` connections. */
export async function measureHttpEcho(clients: number, durationMs: number): Promise<number> {
  const { child, port } = await startLimitServer(
    ["--input-type=module", "-e", ECHO_SERVER],
    "echo server",
  );
  try {
    const { operations, seconds } = await closedLoop(
      [`http://127.0.0.1:${port}`],
      clients,
      durationMs,
      async (c) => ((await c.request("POST", "/echo", "key", S3_READ)).status === 200 ? 1 : 0),
    );
    return operations / seconds;
  } finally {
    child.kill("SIGKILL");
  }
}

/** EdDSA JWT signatures and verifications per second, one after another on one core. */
export async function measureJose(durationMs: number): Promise<{ sign: number; verify: number }> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const sign = () =>
    new SignJWT({
      authorization_details: [
        { type: "writ_action", actions: ["s3:GetObject"], locations: ["arn:aws:s3:::demo/q3.csv"] },
      ],
      request_id: "req_AAAAAAAAAAAAAAAAAAAAAA",
    })
      .setProtectedHeader({ alg: "EdDSA", kid: "k", typ: "JWT" })
      .setIssuer("writ")
      .setSubject("report-agent")
      .setAudience("billing-api")
      .setJti("jti_AAAAAAAAAAAAAAAAAAAAAA")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
  let signed = 0;
  let token = "";
  let started = performance.now();
  while (performance.now() - started < durationMs) {
    token = await sign();
    signed++;
  }
  const signRate = signed / ((performance.now() - started) / 1000);
  let verified = 0;
  started = performance.now();
  while (performance.now() - started < durationMs) {
    await jwtVerify(token, publicKey, { algorithms: ["EdDSA"], issuer: "writ" });
    verified++;
  }
  return { sign: signRate, verify: verified / ((performance.now() - started) / 1000) };
}

/** EVALSHA round trips per second of writ's rate-limit script, by redis-benchmark at 50 clients. */
export async function measureRedisScript(port: number, requests: number): Promise<number> {
  const sha = createHash("sha1").update(GCRA_SCRIPT).digest("hex");
  await run("redis-cli", ["-p", String(port), "SCRIPT", "LOAD", GCRA_SCRIPT]);
  const { stdout } = await run("redis-benchmark", [
    "-p",
    String(port),
    "-c",
    "50",
    "-n",
    String(requests),
    "--csv",
    "EVALSHA",
    sha,
    "1",
    "{bench}:ratelimit:agent",
    "0.001",
    "1000000000",
  ]);
  // CSV: a header line, then "command","rps",...
  const line = stdout.trim().split("\n").at(-1) ?? "";
  const rps = Number(line.split(",")[1]?.replace(/"/g, ""));
  if (!Number.isFinite(rps)) throw new Error(`cannot read redis-benchmark output: ${stdout}`);
  return rps;
}

/** What the bare stack did: credentials per second and the CPU each cost its server and Redis. */
export interface BareStackFigures {
  readonly rps: number;
  /** Microseconds of CPU per credential. */
  readonly serverUs: number;
  readonly redisUs: number;
}

/**
 * The issue path on the bare stack (bench/bare-stack-server.ts: Hono, one
 * node-redis script per call, one jose signature per credential, none of
 * writ's work), driven like writ's: `clients` connections, each creating a
 * request and collecting its credential in a loop.
 */
export async function measureBareStack(
  redis: { readonly url: string; readonly pid: number },
  clients: number,
  durationMs: number,
): Promise<BareStackFigures> {
  const { child, port } = await startLimitServer(
    ["--import", "tsx", join(import.meta.dirname, "bare-stack-server.ts"), redis.url],
    "bare stack server",
  );
  try {
    const url = `http://127.0.0.1:${port}`;
    const step = async (c: BenchConnection) => {
      const created = await c.request("POST", "/v1/requests", "key", S3_READ);
      if (created.status !== 201) throw new Error(`bare create: ${created.status}`);
      const { id } = JSON.parse(created.body) as { id: string };
      const collected = await c.request("POST", `/v1/requests/${id}/credential`, "key");
      if (collected.status !== 200) throw new Error(`bare collect: ${collected.status}`);
      return 1;
    };
    await closedLoop([url], clients, Math.min(1500, durationMs), step);
    const server = child.pid as number;
    const [server0, redis0] = [await cpuSeconds(server), await cpuSeconds(redis.pid)];
    const { operations, seconds } = await closedLoop([url], clients, durationMs, step);
    const [server1, redis1] = [await cpuSeconds(server), await cpuSeconds(redis.pid)];
    return {
      rps: operations / seconds,
      serverUs: ((server1 - server0) * 1e6) / operations,
      redisUs: ((redis1 - redis0) * 1e6) / operations,
    };
  } finally {
    child.kill("SIGKILL");
  }
}
