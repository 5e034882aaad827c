import { spawn } from "node:child_process";
import { mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { segmentName } from "../../src/audit/segments.js";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { S3_READ } from "../support/api.js";
import { REPO_POLICIES } from "../support/harness.js";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";
import { startWritProcess, WRIT_BIN, type WritProcess } from "../support/writ-process.js";
import { allEvents, call, logFiles, loggedEventIds, tally } from "./http.js";

// One replica run as a primary and two worker processes (server.workers: 2) on
// a real redis-server, driven over HTTP. The workers share the port; the
// primary keeps the one audit log and tells them how far it is fsynced.

let dir: string;
let redis: RedisServer;
let setup: ProductionSetup;
let writ: WritProcess;
const key = (id: string) => setup.keys[id] as string;

async function startWorkers(name: string, raw: Record<string, unknown> = {}): Promise<WritProcess> {
  const config = await setup.writeConfig(name, {
    server: { port: 0, shutdown_grace_seconds: 5, workers: 2 },
    ...raw,
  });
  // Not --quiet: the access log says which worker answered.
  return startWritProcess(["serve", "--config", config], { WRIT_REDIS_URL: redis.url });
}

interface LogLine {
  message: string;
  worker?: number;
  pid?: number;
  route?: string;
}

function logLines(process: WritProcess): LogLine[] {
  return process
    .stderr()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Worker pids as the primary logged them, oldest first. */
const workerPids = (process: WritProcess) =>
  logLines(process)
    .filter((l) => l.message === "worker started")
    .map((l) => l.pid as number);

function alive(pid: number): boolean {
  try {
    globalThis.process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One call over a connection of its own, so that the cluster picks a worker for it. */
function onNewConnection(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
  base = writ.url,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method, agent: false, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** One call over `agent`'s connections; a cut connection is status 0. */
function onAgent(
  agent: Agent,
  base: string,
  method: string,
  path: string,
  bearer?: string,
  body?: unknown,
): Promise<RawAnswer> {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return new Promise((resolve) => {
    const req = httpRequest(`${base}${path}`, { method, agent, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      );
    });
    req.on("error", (error) => resolve({ status: 0, headers: {}, body: error.message }));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const healthOnNewConnection = async () => (await onNewConnection("GET", "/readyz")).status;

/** The `name=value` of the cookie set under a name ending in `suffix`. */
function cookieFrom(answer: RawAnswer, suffix: string): string {
  const set = answer.headers["set-cookie"] ?? [];
  const found = (Array.isArray(set) ? set : [set])
    .map((c) => c.split(";")[0] as string)
    .find((c) => (c.split("=")[0] as string).endsWith(suffix));
  if (found === undefined) throw new Error(`no ${suffix} cookie in ${JSON.stringify(set)}`);
  return found;
}

/** A request the demo policy allows at once; its id. */
async function create(): Promise<string> {
  const created = await call<{ id: string }>(
    writ.url,
    "POST",
    "/v1/requests",
    key("report-agent"),
    S3_READ,
  );
  expect(created.status).toBe(201);
  return created.body.id;
}

async function createAndCollect(): Promise<{ id: string; token: string }> {
  const id = await create();
  const collected = await call<{ credential: { token: string } }>(
    writ.url,
    "POST",
    `/v1/requests/${id}/credential`,
    key("report-agent"),
  );
  expect(collected.status).toBe(200);
  return { id, token: collected.body.credential.token };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-workers-"));
  redis = await startRedisServer({ appendOnly: "shipped" });
  setup = await createProductionSetup(dir);
  writ = await startWorkers("replica");
}, 60_000);

afterAll(async () => {
  // A graceful stop exits 0: the workers drained, then the primary closed the log.
  expect(await writ?.stop()).toBe(0);
  await redis?.dispose();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("a replica with worker processes", () => {
  it("answers from both workers on one port, and /metrics sums them", async () => {
    const answers = await Promise.all(
      Array.from({ length: 200 }, () =>
        call(writ.url, "POST", "/v1/requests", key("report-agent"), S3_READ),
      ),
    );
    expect(tally(answers).statuses).toEqual({ 201: 200 });
    const served = new Set(
      logLines(writ)
        .filter((l) => l.message === "http" && l.route === "/v1/requests")
        .map((l) => l.worker),
    );
    expect([...served].sort()).toEqual([1, 2]);

    const metrics = await (await fetch(`${writ.metricsUrl}/metrics`)).text();
    const sample = (series: string) =>
      Number(
        metrics
          .split("\n")
          .find((l) => l.startsWith(`${series} `))
          ?.split(" ")[1],
      );
    expect(
      sample('writ_http_requests_total{route="/v1/requests",method="POST",status="201"}'),
    ).toBe(200);
    expect(sample('writ_decisions_total{effect="allow"}')).toBe(200);
    expect(sample('process_resident_memory_bytes{worker="1"}')).toBeGreaterThan(0);
    expect(sample('process_resident_memory_bytes{worker="2"}')).toBeGreaterThan(0);
  });

  it("hands out one credential for 200 concurrent collects, and consumes a token once", async () => {
    const id = await create();
    const collects = await Promise.all(
      Array.from({ length: 200 }, () =>
        call<{ credential?: { token: string } }>(
          writ.url,
          "POST",
          `/v1/requests/${id}/credential`,
          key("report-agent"),
        ),
      ),
    );
    expect(tally(collects)).toEqual({
      statuses: { 200: 1, 410: 199 },
      codes: { credential_already_issued: 199 },
    });
    const token = collects.find((a) => a.status === 200)?.body.credential?.token as string;
    const consumes = await Promise.all(
      Array.from({ length: 300 }, () =>
        call(writ.url, "POST", "/v1/tokens/consume", key("billing-api"), { token }),
      ),
    );
    expect(tally(consumes)).toEqual({
      statuses: { 200: 1, 409: 299 },
      codes: { token_replayed: 299 },
    });
  });

  it("keeps one audit log for the replica, holding every event once, and it verifies", async () => {
    await createAndCollect();
    const events = await allEvents(writ.url, key("dana"));
    const auditDir = join(dir, "replica", "audit");
    // No per-process copies: the workers write no log of their own.
    expect((await readdir(auditDir)).includes("replicas")).toBe(false);
    const logged = new Set<string>();
    for (const segment of await logFiles(auditDir)) {
      for (const id of await loggedEventIds(segment)) {
        expect(logged.has(id)).toBe(false);
        logged.add(id);
      }
      expect(await verifyLogFile(segment)).toMatchObject({ ok: true });
    }
    // Every event a caller was answered for is in the log.
    for (const event of events) expect(logged.has(event.id)).toBe(true);
  });

  it("keeps a console sign-in on every worker: sessions live in Redis", async () => {
    const form = await onNewConnection("GET", "/console/login");
    expect(form.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)?.[1] as string;
    const signedIn = await onNewConnection(
      "POST",
      "/console/login",
      {
        cookie: cookieFrom(form, "writ_console_login"),
        "content-type": "application/x-www-form-urlencoded",
      },
      new URLSearchParams({ csrf, key: key("dana") }).toString(),
    );
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.location).toBe("/console/requests");
    const session = cookieFrom(signedIn, "writ_console");
    const pages = await Promise.all(
      Array.from({ length: 20 }, () =>
        onNewConnection("GET", "/console/requests", { cookie: session }),
      ),
    );
    expect(pages.map((p) => p.status)).toEqual(pages.map(() => 200));
    const served = new Set(
      logLines(writ)
        .filter((l) => l.message === "http" && l.route?.startsWith("/console/requests"))
        .map((l) => l.worker),
    );
    expect([...served].sort()).toEqual([1, 2]);
  });

  it("starts another worker when one dies, and keeps answering", async () => {
    const [first] = workerPids(writ);
    globalThis.process.kill(first as number, "SIGKILL");
    await until(() => workerPids(writ).length === 3, "a replacement worker");
    // Worker ids count up: the replacement is worker 3, and it takes its share
    // of new connections (pooled ones stay with the worker they were made to).
    await until(async () => {
      const statuses = await Promise.all(Array.from({ length: 10 }, () => healthOnNewConnection()));
      expect(statuses.every((status) => status === 200)).toBe(true);
      return logLines(writ).some((l) => l.message === "http" && l.worker === 3);
    }, "the replacement to serve");
    for (let i = 0; i < 20; i++) await createAndCollect();
  });

  it("never takes back what /metrics counted when a worker is slow to answer or dies", async () => {
    const series = 'writ_http_requests_total{route="/v1/requests",method="POST",status="201"}';
    const counted = async () => {
      const metrics = await (await fetch(`${writ.metricsUrl}/metrics`)).text();
      const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
      return Number(line?.split(" ")[1]);
    };
    // Connections of their own: both workers count some.
    for (let i = 0; i < 10; i++) {
      const answer = await onNewConnection(
        "POST",
        "/v1/requests",
        { authorization: `Bearer ${key("report-agent")}`, "content-type": "application/json" },
        JSON.stringify(S3_READ),
      );
      expect(answer.status).toBe(201);
    }
    const before = await counted();
    const [first, second] = workerPids(writ).filter(alive);
    // A worker that does not answer in time (held here) still counts what it counted.
    globalThis.process.kill(second as number, "SIGSTOP");
    try {
      expect(await counted()).toBe(before);
    } finally {
      globalThis.process.kill(second as number, "SIGCONT");
    }
    // So does one that has exited: a sum that went back would read as a counter
    // reset, and a rate over it as a burst of everything the others had counted.
    const started = workerPids(writ).length;
    globalThis.process.kill(first as number, "SIGKILL");
    await until(() => workerPids(writ).length > started, "a replacement worker");
    expect(await counted()).toBe(before);
  });
});

describe("a worker whose primary is gone", () => {
  it("stops: nothing more can be made durable", async () => {
    const other = await startWorkers("orphaned");
    const pids = workerPids(other);
    expect(pids).toHaveLength(2);
    await other.stop("SIGKILL");
    await until(() => pids.every((pid) => !alive(pid)), "the workers to exit");
    await expect(fetch(`${other.url}/healthz`)).rejects.toThrow();
  });

  it("answers what is in flight 503 audit_unavailable, draining or not, then exits", async () => {
    // Watching the policies, as in production: nothing the worker holds keeps it alive.
    const other = await startWorkers("orphaned-in-flight", {
      policies: { dir: REPO_POLICIES, watch: true },
    });
    const pids = workerPids(other);
    // Connections made now stay with their worker once the primary cannot hand out more.
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      await Promise.all(
        Array.from({ length: 4 }, () => onAgent(agent, other.url, "GET", "/readyz")),
      );
      const streamLength = async () =>
        Number(await redisCommand(redis.url, ["XLEN", "{writ}:events"]));
      const before = await streamLength();
      // Held, the primary reports no fsync: the calls are recorded and wait for the log.
      other.child.kill("SIGSTOP");
      const answers = Promise.all(
        Array.from({ length: 4 }, () =>
          onAgent(agent, other.url, "POST", "/v1/requests", key("report-agent"), S3_READ),
        ),
      );
      await until(async () => (await streamLength()) >= before + 4, "the calls to be recorded");
      // One worker drains (as on a stop) when the primary goes; the other does not.
      globalThis.process.kill(pids[0] as number, "SIGTERM");
      const began = Date.now();
      other.child.kill("SIGKILL");
      for (const answer of await answers) {
        expect(answer.status).toBe(503);
        expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "audit_unavailable" } });
      }
      // At once, not after the append timeout (10 s).
      expect(Date.now() - began).toBeLessThan(5_000);
      await until(() => pids.every((pid) => !alive(pid)), "the workers to exit");
    } finally {
      agent.destroy();
      await other.stop("SIGKILL");
    }
  });
});

describe("a worker that refuses to start", () => {
  it("exits, so that its primary starts another once the cause is fixed", async () => {
    const refusing = await startWorkers("refusing");
    try {
      const [first] = workerPids(refusing);
      // A replacement loads the checkpoint key the primary made; without it, it refuses.
      const checkpointKey = join(dir, "refusing", "keys", "checkpoint.json");
      await rename(checkpointKey, `${checkpointKey}.away`);
      globalThis.process.kill(first as number, "SIGKILL");
      await until(() => workerPids(refusing).length >= 3, "a replacement worker");
      const replacement = workerPids(refusing)[2] as number;
      await until(() => refusing.stderr().includes("writ serve refuses to start"), "the refusal");
      // It does not linger as a process that serves nothing: it exits, and is replaced.
      await until(() => !alive(replacement), "the refusing worker to exit");
      const exits = logLines(refusing).filter(
        (l) => l.message === "worker exited; starting another",
      );
      expect(exits.some((l) => l.pid === replacement)).toBe(true);

      await rename(`${checkpointKey}.away`, checkpointKey);
      // A worker started after the fix serves: the replica is back to two workers.
      const refusedIds = new Set(
        logLines(refusing)
          .filter((l) => l.message === "worker exited; starting another")
          .map((l) => l.worker),
      );
      await until(async () => {
        await Promise.all(
          Array.from({ length: 4 }, () =>
            onNewConnection("GET", "/readyz", {}, undefined, refusing.url),
          ),
        );
        return logLines(refusing).some(
          (l) => l.message === "http" && (l.worker as number) > 2 && !refusedIds.has(l.worker),
        );
      }, "a replacement to serve");
      expect(await refusing.stop()).toBe(0);
    } finally {
      await refusing.stop();
    }
  }, 60_000);
});

describe("a stop while a worker is starting", () => {
  it("reaches the starting worker too: the replica drains without waiting to kill it", async () => {
    const restarting = await startWorkers("restarting");
    const [first] = workerPids(restarting);
    globalThis.process.kill(first as number, "SIGKILL");
    await until(() => workerPids(restarting).length >= 3, "a replacement worker");
    const replacement = workerPids(restarting)[2] as number;
    // The replacement is still loading: the stop reaches it before it listens for messages.
    const began = Date.now();
    expect(await restarting.stop()).toBe(0);
    expect(alive(replacement)).toBe(false);
    // Killing a worker that missed the stop waits shutdown_grace_seconds (5) and 10 s more.
    expect(Date.now() - began).toBeLessThan(10_000);
  }, 60_000);

  it("before every worker listens, drains what started and closes the log, exit 0", async () => {
    const config = await setup.writeConfig("early", {
      server: { port: 0, shutdown_grace_seconds: 5, workers: 2 },
    });
    const child = spawn(globalThis.process.execPath, [WRIT_BIN, "serve", "--config", config], {
      env: { ...globalThis.process.env, NO_COLOR: "1", WRIT_REDIS_URL: redis.url },
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      await until(() => (stderr.match(/"worker started"/g) ?? []).length === 2, "the forks");
      // The workers are still loading: no signal handler of theirs is there yet.
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(stderr).toContain('"message":"writ serve draining"');
      expect(stderr).toContain('"message":"writ serve stopped"');
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);
});

describe("a primary whose audit log fails closed", () => {
  it("has its workers refuse changes before recording them, and report not ready", async () => {
    const own = await startRedisServer();
    const config = await setup.writeConfig("failing", {
      server: { port: 0, shutdown_grace_seconds: 5, workers: 2 },
      audit: { segment_max_bytes: 4096 },
    });
    const failing = await startWritProcess(["serve", "--config", config, "--quiet"], {
      WRIT_REDIS_URL: own.url,
    });
    try {
      // The log opens each new segment exclusively: with the next one's name
      // taken, the first rotation fails, a real write failure of the primary.
      await writeFile(join(dir, "failing", "audit", segmentName(2)), "", { flag: "wx" });
      let refused: Awaited<ReturnType<typeof call>> | undefined;
      for (let i = 0; i < 20 && refused === undefined; i++) {
        const created = await call(
          failing.url,
          "POST",
          "/v1/requests",
          key("report-agent"),
          S3_READ,
        );
        if (created.status !== 201) refused = created;
      }
      expect(refused?.status).toBe(503);
      expect(refused?.body).toMatchObject({ error: { code: "audit_unavailable" } });

      // Both workers know it (connections go to them in turn): not ready...
      const readiness = async () => {
        const answers = [];
        for (let i = 0; i < 4; i++)
          answers.push(
            (await onNewConnection("GET", "/readyz", {}, undefined, failing.url)).status,
          );
        return answers;
      };
      await until(
        async () => (await readiness()).every((s) => s === 503),
        "both workers not ready",
      );
      // ...and a change is refused up front: nothing more reaches the stream.
      const streamLength = () => redisCommand(own.url, ["XLEN", "{writ}:events"]);
      const before = await streamLength();
      for (let i = 0; i < 4; i++) {
        const answer = await onNewConnection(
          "POST",
          "/v1/requests",
          { authorization: `Bearer ${key("report-agent")}`, "content-type": "application/json" },
          JSON.stringify(S3_READ),
          failing.url,
        );
        expect(answer.status).toBe(503);
        expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "audit_unavailable" } });
      }
      expect(await streamLength()).toBe(before);
    } finally {
      await failing.stop();
      await own.dispose();
    }
  });
});

describe("writ dev with server.workers", () => {
  it("runs in one process and says so", async () => {
    const config = join(dir, "dev.json");
    await writeFile(
      config,
      JSON.stringify({ server: { port: 0, workers: 3 }, data_dir: join(dir, "dev") }),
    );
    const dev = await startWritProcess(["dev", "--config", config, "--json-logs"]);
    try {
      const warning = logLines(dev).find((l) => l.message.startsWith("server.workers"));
      expect(warning?.message).toBe(
        "server.workers applies to writ serve; writ dev runs in one process",
      );
      expect(logLines(dev).some((l) => l.message === "worker started")).toBe(false);
    } finally {
      await dev.stop();
    }
  });
});
