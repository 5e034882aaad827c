import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { openRedisBackend } from "../../src/config/wire-redis.js";
import { silentLogger } from "../../src/ports/logger.js";
import {
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { freePort } from "../support/redis.js";

// The shipped infra/redis/redis.conf, run as shipped (only the password hash,
// port and data dir filled in), with writ logging in as its ACL user.

const CONF = resolve(import.meta.dirname, "../../infra/redis/redis.conf");
const PLACEHOLDER = "REPLACE_WITH_THE_SHA256_OF_WRITS_PASSWORD";
const PASSWORD = "writ-test-password-7f3a";

/** Runs redis-server on `conf`; resolves when it is ready, or with its output if it exits. */
function runRedis(conf: string, port: number, dir: string) {
  const child = spawn("redis-server", [conf, "--port", String(port), "--dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise<{ child: ChildProcess } | { exited: number | null; output: string }>(
    (resolveReady) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolveReady({ child });
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolveReady({ exited: code, output });
      });
    },
  );
  return { child, ready };
}

let dir: string;
let port: number;
let redis: ChildProcess | undefined;
let t: TestWrit | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-redis-conf-"));
  port = await freePort();
  const hash = createHash("sha256").update(PASSWORD).digest("hex");
  const conf = join(dir, "redis.conf");
  await writeFile(conf, (await readFile(CONF, "utf8")).replace(PLACEHOLDER, hash));
  const started = await runRedis(conf, port, dir).ready;
  if (!("child" in started)) throw new Error(`redis-server did not start:\n${started.output}`);
  redis = started.child;
  const config = parseConfig({
    redis: { url: `redis://127.0.0.1:${port}`, username: "writ", password_env: "TEST_REDIS_PW" },
  });
  const backend = await openRedisBackend(
    config,
    { TEST_REDIS_PW: PASSWORD },
    { logger: silentLogger },
  );
  t = await startTestWrit({}, { store: backend.store, rateLimiter: backend.rateLimiter });
}, 30_000);

afterAll(async () => {
  await t?.close();
  redis?.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("infra/redis/redis.conf", () => {
  it("refuses to start as shipped, until the writ user has a real password hash", async () => {
    const other = join(dir, "shipped");
    await writeFile(`${other}.conf`, await readFile(CONF, "utf8"));
    const result = await runRedis(`${other}.conf`, await freePort(), dir).ready;
    expect("exited" in result).toBe(true);
    if ("exited" in result) {
      expect(result.exited).not.toBe(0);
      expect(result.output).toMatch(/user declaration 'writ'.*password hash/);
    }
  });

  it("lets writ do everything it does, as the writ ACL user", async () => {
    const w = t as TestWrit;
    expect((await w.call("GET", "/readyz")).status).toBe(200);
    const { id } = await createRequest(w, S3_READ);
    const token = await collectToken(w, id);
    const server = keyOf(w, "billing-api");
    expect(
      (await w.call("POST", "/v1/tokens/consume", { key: server, body: { token } })).status,
    ).toBe(200);
    await expectError(
      await w.call("POST", "/v1/tokens/consume", { key: server, body: { token } }),
      409,
      "token_replayed",
    );
    const pending = await createRequest(w, CUSTOMERS_EXPORT);
    const poll = w.call("GET", `/v1/requests/${pending.id}?wait=10&while=pending`, {
      key: keyOf(w, "report-agent"),
    });
    await approveAs(w, "bob", pending.id);
    await approveAs(w, "carol", pending.id);
    expect(((await (await poll).json()) as { status: string }).status).toBe("approved");
    const dana = keyOf(w, "dana");
    expect((await w.call("GET", "/v1/requests?limit=10", { key: dana })).status).toBe(200);
    expect((await w.call("GET", `/v1/events?request_id=${id}`, { key: dana })).status).toBe(200);
  });

  it("keeps writ's user away from other keys and from destructive or admin commands", async () => {
    const client = createClient({
      url: `redis://127.0.0.1:${port}`,
      username: "writ",
      password: PASSWORD,
    });
    await client.connect();
    try {
      for (const command of [
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["KEYS", "*"],
        ["CONFIG", "SET", "appendonly", "no"],
        ["SET", "not-writ", "1"],
        ["SCRIPT", "FLUSH"],
        ["SHUTDOWN", "NOSAVE"],
        ["ACL", "LIST"],
      ]) {
        await expect(client.sendCommand(command), command.join(" ")).rejects.toThrow(/NOPERM/);
      }
      // No anonymous access.
      const anonymous = createClient({
        url: `redis://127.0.0.1:${port}`,
        socket: { reconnectStrategy: false },
      });
      anonymous.on("error", () => {});
      await expect(anonymous.connect()).rejects.toThrow(/NOAUTH/);
      anonymous.destroy();
    } finally {
      await client.close();
    }
  });

  it("writes every change to the append-only file", async () => {
    const aof = join(dir, "appendonlydir");
    const files = await readdir(aof);
    const incr = files.filter((f) => f.endsWith(".incr.aof"));
    expect(incr.length).toBeGreaterThan(0);
    const sizes = await Promise.all(incr.map(async (f) => (await stat(join(aof, f))).size));
    expect(Math.max(...sizes)).toBeGreaterThan(1000);
    const text = await readFile(CONF, "utf8");
    expect(text).toMatch(/^appendonly yes$/m);
    expect(text).toMatch(/^appendfsync everysec$/m);
    expect(text).toMatch(/^maxmemory-policy noeviction$/m);
    expect(text).toMatch(/^user default off$/m);
  });
});
