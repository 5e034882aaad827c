import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, createRedisStore } from "../../src/adapters/redis-store.js";
import { tailConsumerGroup } from "../../src/cli/commands/audit/tail-group.js";
import { runCli } from "../../src/cli/main.js";
import { silentLogger } from "../../src/ports/logger.js";
import {
  allEvents,
  collectToken,
  createRequest,
  type EventBody,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { freePort, type RedisServer, replyFields, startRedisServer } from "../support/redis.js";

const ROOT = resolve(import.meta.dirname, "../..");
const WAIT_MS = 20_000;
/** Not writ's default prefix: the tail must find the stream through the configuration. */
const PREFIX = "acme";
const STREAM = `{${PREFIX}}:events`;

let redis: RedisServer;
/** A plain client, to look at the group as Redis holds it. */
const plainClient = (url: string) => createClient({ url }).on("error", () => {});
let raw: ReturnType<typeof plainClient>;
let t: TestWrit;
let dir: string;
let config: string;

/** What a tail wrote, with a way to wait for it and to make stdout break. */
function output(options: { breakOnWrite?: number } = {}) {
  const lines: string[] = [];
  let stderr = "";
  let writes = 0;
  const waiters = new Set<() => void>();
  return {
    lines,
    stderr: () => stderr,
    io: (env: Record<string, string> = {}) => ({
      stdout(text: string) {
        writes++;
        if (writes === options.breakOnWrite) throw new Error("EPIPE");
        lines.push(...text.trimEnd().split("\n"));
        for (const wake of waiters) wake();
      },
      stderr(text: string) {
        stderr += text;
      },
      env,
      stderrIsTty: false,
    }),
    /** Resolves once `count` lines are out; fails after a bounded wait. */
    async until(count: number): Promise<void> {
      const deadline = Date.now() + WAIT_MS;
      while (lines.length < count) {
        if (Date.now() > deadline) throw new Error(`${lines.length} lines: ${stderr}`);
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, 250);
          waiters.add(() => {
            clearTimeout(timer);
            wake();
          });
        });
        waiters.clear();
      }
    },
  };
}

const idsOf = (lines: readonly string[]) => lines.map((l) => (JSON.parse(l) as EventBody).id);

async function pendingOf(group: string): Promise<number> {
  const summary = (await raw.xPending(STREAM, group)) as { pending: number };
  return summary.pending;
}

/** How far Redis has given a group the stream, and how much of it is unacknowledged. */
async function groupProgress(group: string) {
  const groups = (await raw.sendCommand(["XINFO", "GROUPS", STREAM])) as unknown[];
  for (const entry of groups) {
    const fields = replyFields(entry);
    if (String(fields.name) === group) {
      return {
        lastDelivered: String(fields["last-delivered-id"]),
        pending: Number(fields.pending),
      };
    }
  }
  return undefined;
}

/** `writ audit tail` as its own process, as a shipper runs it. */
function spawnTail(args: readonly string[]) {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "src/cli/bin.ts"), "audit", "tail", ...args],
    { cwd: ROOT, env: { PATH: process.env.PATH ?? "", NO_COLOR: "1" } },
  );
  const out = output();
  const io = out.io();
  let buffer = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    const complete = buffer.slice(0, buffer.lastIndexOf("\n") + 1);
    buffer = buffer.slice(complete.length);
    if (complete !== "") io.stdout(complete);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => io.stderr(chunk));
  const exited = new Promise<number | null>((done) => child.on("close", (code) => done(code)));
  return { child, out, exited };
}

beforeAll(async () => {
  redis = await startRedisServer();
  const client = await connectRedis({ url: redis.url, logger: silentLogger });
  const store = createRedisStore({
    client,
    prefix: PREFIX,
    closeClient: true,
    logger: silentLogger,
  });
  const extra = extraIdentities({ agents: [{ id: "etl-agent", owner: "bob" }] });
  t = await startTestWrit(extra.overrides, { store });
  Object.assign(t.keys, extra.keys);
  raw = plainClient(redis.url);
  await raw.connect();
  dir = await mkdtemp(join(tmpdir(), "writ-tail-group-"));
  config = join(dir, "writ.yaml");
  await writeFile(
    config,
    `redis:\n  url: ${redis.url}\n  key_prefix: ${PREFIX}\n  connect_timeout_seconds: 2\n`,
  );
});

afterAll(async () => {
  await raw?.close();
  await t?.close();
  await redis?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("writ audit tail --group", () => {
  it("acknowledges only what it printed: a restart prints the pending events first, nothing is lost", async () => {
    const first = await createRequest(t, S3_READ);
    await collectToken(t, first.id);
    const before = await allEvents(t);

    // Run 1 ships the stream so far, then its stdout breaks on the next batch.
    const run1 = output({ breakOnWrite: 2 });
    const stop1 = new AbortController();
    const options = {
      configFile: config,
      group: "siem",
      consumer: "shipper-1",
      fromStart: true,
      filter: {},
      json: true,
    };
    const done1 = tailConsumerGroup(options, run1.io(), stop1.signal);
    await run1.until(before.length);
    expect(idsOf(run1.lines)).toEqual(before.map((e) => e.id));
    const second = await createRequest(t, S3_READ);
    expect(await done1).toBe(1);
    expect(run1.stderr()).toContain("could not write to stdout (EPIPE)");
    // The broken batch was delivered to shipper-1 and never acknowledged.
    const unacked = (await allEvents(t)).slice(before.length);
    expect(unacked.length).toBeGreaterThan(0);
    expect(await pendingOf("siem")).toBe(unacked.length);

    // More happens while no shipper runs.
    await collectToken(t, second.id);
    await createRequest(t, S3_READ);
    const missed = (await allEvents(t)).slice(before.length);

    // Run 2, the CLI as a process: the pending events first, then the rest, in order.
    const run2 = spawnTail([
      "--group",
      "siem",
      "--consumer",
      "shipper-1",
      "--config",
      config,
      "--json",
    ]);
    await run2.out.until(missed.length);
    expect(idsOf(run2.out.lines)).toEqual(missed.map((e) => e.id));
    expect(run2.out.stderr()).toContain(`following group siem on ${STREAM}`);
    await expect.poll(() => pendingOf("siem"), { timeout: WAIT_MS }).toBe(0);
    run2.child.kill("SIGINT");
    expect(await run2.exited).toBe(0);

    // Run 3 resumes after everything acknowledged: only what is new.
    const run3 = output();
    const stop3 = new AbortController();
    const done3 = tailConsumerGroup(
      { ...options, fromStart: false },
      run3.io({ WRIT_REDIS_URL: redis.url }),
      stop3.signal,
    );
    await expect.poll(() => run3.stderr(), { timeout: WAIT_MS }).toContain("consumer shipper-1");
    const third = await createRequest(t, S3_READ);
    const fresh = (await allEvents(t, { request_id: third.id })).map((e) => e.id);
    await run3.until(fresh.length);
    stop3.abort();
    expect(await done3).toBe(0);
    expect(idsOf(run3.lines)).toEqual(fresh);
    expect(await pendingOf("siem")).toBe(0);
  });

  it("starts a new group at new events, filters as the API tail does, and acknowledges what it skips", async () => {
    // Issued before the group exists: the tail never sees their request.created,
    // so it asks Redis whose requests they are.
    const etlKey = keyOf(t, "etl-agent");
    const oldEtl = await createRequest(t, S3_READ, etlKey);
    await collectToken(t, oldEtl.id, etlKey);
    const oldReport = await createRequest(t, S3_READ);
    await collectToken(t, oldReport.id);
    const file = join(dir, "elsewhere.yaml");
    await writeFile(file, `redis:\n  url: redis://127.0.0.1:1\n  key_prefix: ${PREFIX}\n`);
    const out = output();
    const stop = new AbortController();
    const done = tailConsumerGroup(
      {
        // WRIT_REDIS_URL replaces the configured URL, which points nowhere.
        configFile: file,
        group: "expiries",
        consumer: "c1",
        fromStart: false,
        filter: { type: "credential.expired", agent: "etl-agent" },
        json: false,
      },
      out.io({ WRIT_REDIS_URL: redis.url }),
      stop.signal,
    );
    await expect.poll(() => out.stderr(), { timeout: WAIT_MS }).toContain("from new events on");
    const newEtl = await createRequest(t, S3_READ, etlKey);
    await collectToken(t, newEtl.id, etlKey);
    // Every credential issued so far expires unused, report-agent's too.
    t.clock.advance(3600);
    await t.writ.broker.expireDue();
    await out.until(2);
    // Requests that expire at the same instant expire in any order: events may
    // follow the last line printed. Stop only once the group was given the
    // whole stream and acknowledged all of it, the events it skipped included.
    const newest = (await raw.xRevRange(STREAM, "+", "-", { COUNT: 1 }))?.[0];
    await expect
      .poll(() => groupProgress("expiries"), { timeout: WAIT_MS })
      .toEqual({ lastDelivered: newest?.id, pending: 0 });
    stop.abort();
    expect(await done).toBe(0);
    expect(out.lines).toHaveLength(2);
    for (const line of out.lines) {
      expect(line).toMatch(/^\S+Z {2}credential\.expired\s+req_\S+ {2}system:writ {2}/);
    }
    const shown = out.lines.map((l) => /req_[A-Za-z0-9_-]{22}/.exec(l)?.[0]);
    expect(shown.sort()).toEqual([oldEtl.id, newEtl.id].sort());
    expect(await pendingOf("expiries")).toBe(0);
    const expired = await allEvents(t, { type: "credential.expired" });
    expect(expired.map((e) => e.request_id)).toContain(oldReport.id);
  });

  it("acknowledges pending events the stream no longer holds, and says so", async () => {
    // A stream of its own: entries of writ's shape, written through the store port.
    const client = await connectRedis({ url: redis.url, logger: silentLogger });
    const store = createRedisStore({
      client,
      prefix: "trim",
      closeClient: true,
      logger: silentLogger,
    });
    const trimConfig = join(dir, "trim.yaml");
    await writeFile(trimConfig, `redis:\n  url: ${redis.url}\n  key_prefix: trim\n`);
    try {
      const event = (n: number) => ({
        type: "request.expired" as const,
        requestId: "req_AAAAAAAAAAAAAAAAAAAAAA",
        actor: { kind: "system" as const, id: "writ" },
        time: t.clock.now(),
        data: { previous_status: "pending", n },
      });
      const ids = (await store.append([event(1), event(2), event(3)])).map((e) => e.id);
      const options = {
        configFile: trimConfig,
        group: "g",
        consumer: "c",
        fromStart: true,
        filter: {},
        json: true,
      };
      const broken = output({ breakOnWrite: 1 });
      expect(await tailConsumerGroup(options, broken.io(), new AbortController().signal)).toBe(1);
      await raw.xDel("{trim}:events", ids[1] as string);

      const out = output();
      const stop = new AbortController();
      const done = tailConsumerGroup(options, out.io(), stop.signal);
      await out.until(2);
      stop.abort();
      expect(await done).toBe(0);
      expect(idsOf(out.lines)).toEqual([ids[0], ids[2]]);
      expect(out.stderr()).toContain(`1 pending event(s) were trimmed from the stream`);
      expect(out.stderr()).toContain(ids[1]);
    } finally {
      await store.close();
    }
  });

  it("rides out a Redis restart: it retries, then goes on where the group stopped", async () => {
    const own = await startRedisServer({ appendOnly: true });
    const client = await connectRedis({ url: own.url, logger: silentLogger });
    const store = createRedisStore({
      client,
      prefix: "outage",
      closeClient: true,
      logger: silentLogger,
    });
    const ownConfig = join(dir, "outage.yaml");
    await writeFile(ownConfig, `redis:\n  url: ${own.url}\n  key_prefix: outage\n`);
    const event = {
      type: "request.cancelled" as const,
      requestId: "req_BBBBBBBBBBBBBBBBBBBBBB",
      actor: { kind: "agent" as const, id: "report-agent" },
      time: t.clock.now(),
      data: {},
    };
    const out = output();
    const stop = new AbortController();
    try {
      const done = tailConsumerGroup(
        {
          configFile: ownConfig,
          group: "g",
          consumer: "c",
          fromStart: true,
          filter: {},
          json: true,
        },
        out.io(),
        stop.signal,
      );
      const [first] = await store.append([event]);
      await out.until(1);
      await own.stop();
      await expect.poll(() => out.stderr(), { timeout: WAIT_MS }).toContain("Redis unavailable");
      await own.restart();
      // The store's own connection comes back by itself; until then appends are refused.
      let second: string | undefined;
      await expect
        .poll(
          async () => {
            second ??= (await store.append([event]).catch(() => []))[0]?.id;
            return second;
          },
          { timeout: WAIT_MS },
        )
        .toBeDefined();
      await expect
        .poll(() => idsOf(out.lines).includes(second as string), { timeout: WAIT_MS })
        .toBe(true);
      stop.abort();
      expect(await done).toBe(0);
      // At least once: an event whose acknowledgement the outage cut may show twice.
      expect([...new Set(idsOf(out.lines))]).toEqual([first?.id, second]);
      expect(out.stderr()).toMatch(/retrying in \d/);
    } finally {
      stop.abort();
      await store.close();
      await own.dispose();
    }
  });

  it("refuses bad command lines, missing or unusable Redis, with clear errors and exit codes", async () => {
    const cli = async (args: readonly string[], env: Record<string, string> = {}) => {
      const out = output();
      const code = await runCli(["audit", "tail", ...args], out.io(env));
      return { code, stderr: out.stderr() };
    };
    for (const args of [
      ["--group", "bad name"],
      ["--group", "-x"],
      ["--group", "g", "--consumer", "a/b"],
      ["--group", "g", "--after", "1"],
      ["--group", "g", "--cursor-file", join(dir, "c")],
      ["--consumer", "c"],
      ["--config", config],
    ]) {
      expect((await cli([...args, "--config", config])).code, args.join(" ")).toBe(2);
    }
    const unnamed = await cli(["--group", "g"]);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain(
      "pass --config <file> (the writ configuration) or set WRIT_REDIS_URL",
    );

    const missing = await cli(["--group", "g", "--config", join(dir, "nope.yaml")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Cannot read the configuration file");

    const memory = join(dir, "memory.yaml");
    await writeFile(memory, "store:\n  kind: memory\n");
    const noRedis = await cli(["--group", "g", "--config", memory]);
    expect(noRedis.code).toBe(1);
    expect(noRedis.stderr).toContain("store.kind:");

    // Every problem on a line of its own, under the key that has it.
    const invalid = join(dir, "invalid.yaml");
    await writeFile(invalid, "redis:\n  url: http://redis.internal\n  key_prefix: a b\n");
    const badConfig = await cli(["--group", "g", "--config", invalid]);
    expect(badConfig.code).toBe(1);
    expect(badConfig.stderr).not.toContain("\uFFFD");
    expect(badConfig.stderr.split("\n")).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^writ audit tail: Invalid configuration in .*invalid\.yaml:$/),
        expect.stringMatching(/^ {2}redis\.url: expected a redis:\/\/ or rediss:\/\/ URL/),
        expect.stringMatching(/^ {2}redis\.key_prefix: /),
      ]),
    );

    const port = await freePort();
    const down = join(dir, "down.yaml");
    await writeFile(
      down,
      `redis:\n  url: redis://127.0.0.1:${port}\n  connect_timeout_seconds: 1\n`,
    );
    const unreachable = await cli(["--group", "g", "--config", down]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      new RegExp(
        `store_unavailable: Could not connect to Redis at redis://127\\.0\\.0\\.1:${port} within 1 s( \\(ECONNREFUSED\\))?\\.`,
      ),
    );

    // A key of another type where the stream should be: Redis refuses, retrying cannot help.
    await raw.set("{wrong}:events", "not a stream");
    const wrong = join(dir, "wrong.yaml");
    await writeFile(wrong, `redis:\n  url: ${redis.url}\n  key_prefix: wrong\n`);
    const refused = await cli(["--group", "g", "--config", wrong]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("Redis refused XGROUP CREATE: WRONGTYPE");
  });
});
