import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { runCli } from "../../src/cli/main.js";
import type { DomainEvent, RecordedEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import type { RunningServer } from "../../src/server.js";
import { type EventBody, type EventPage, expectJson, keyOf } from "../support/api.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { waitFor } from "../support/wait.js";

const ROOT = resolve(import.meta.dirname, "../..");
const T0 = Date.parse("2026-01-15T09:00:00.000Z");

/**
 * A long stream, cut down to what a test can append in a few seconds: 400,000
 * events, one a millisecond, of which `token.replay_blocked` is one in 50,000
 * and the very last. The store's deadline is cut down with it, to 1 s: a read
 * that scanned the whole stream would take well past it, as one over millions
 * of events takes past the default 5 s.
 */
const EVENTS = 400_000;
const BATCH = 10_000;
const DEADLINE_MS = 1000;
const isRare = (i: number) => i % 50_000 === 7 || i === EVENTS - 1;

let redis: RedisServer;
let client: RedisStoreClient;
let store: RequestStore;
let t: TestWrit;
let server: RunningServer;
let all: readonly RecordedEvent[] = [];
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
  store = createRedisStore({
    client,
    prefix: "long",
    logger: silentLogger,
    operationTimeoutMs: DEADLINE_MS,
  });
  const recorded: RecordedEvent[] = [];
  for (let start = 0; start < EVENTS; start += BATCH) {
    const batch: DomainEvent[] = [];
    for (let i = start; i < start + BATCH; i++) {
      batch.push({
        type: isRare(i) ? "token.replay_blocked" : "token.used",
        requestId: `req_${String(i % 1000).padStart(22, "A")}`,
        actor: { kind: "resource_server", id: "billing-api" },
        time: T0 + i,
        data: { jti: `jti_${i}` },
      });
    }
    recorded.push(...(await store.append(batch)));
  }
  all = recorded;
  t = await startTestWrit({}, { store });
  server = await serveTestWrit(t);
  // The audit log copies the whole stream first: let it, so that the reads
  // below are timed on their own, not against its catching up.
  await waitFor(
    "the audit log to copy the stream",
    async () => (t.writ.auditFile?.lastSeq() ?? 0) >= EVENTS,
    60_000,
  );
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  // Stopping the server closes the writ too.
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
  await client?.close();
  await redis?.dispose();
});

const get = async (query: string): Promise<{ page: EventPage; ms: number }> => {
  const started = performance.now();
  const res = await fetch(`${server.url}/v1/events?${query}`, {
    headers: { authorization: `Bearer ${keyOf(t, "dana")}` },
  });
  const ms = performance.now() - started;
  return { page: await expectJson<EventPage>(res, 200), ms };
};

/** Follows `next` from the start; every call must answer (200) within the deadline. */
async function follow(query: string): Promise<{ ids: string[]; calls: number }> {
  const ids: string[] = [];
  let after: string | undefined;
  let calls = 0;
  for (;;) {
    const { page, ms } = await get(`${query}${after !== undefined ? `&after=${after}` : ""}`);
    calls++;
    expect(ms).toBeLessThan(DEADLINE_MS);
    ids.push(...page.items.map((e) => e.id));
    if (page.next === undefined) return { ids, calls };
    after = page.next;
  }
}

describe("GET /v1/events filtered on a long stream", () => {
  it("answers each call within the deadline, and following next finds every match exactly once", async () => {
    const rare = all.filter((e) => e.type === "token.replay_blocked").map((e) => e.id);
    expect(rare).toHaveLength(9);
    const byType = await follow("type=token.replay_blocked&limit=100");
    expect(byType.ids).toEqual(rare);
    // Bounded steps: many calls, each an empty or short page that says how far it got.
    expect(byType.calls).toBeGreaterThan(10);

    const since = new Date(T0 + EVENTS - 1500).toISOString();
    const late = all.slice(EVENTS - 1500).map((e) => e.id);
    const bySince = await follow(`since=${since}&limit=1000`);
    expect(bySince.ids).toEqual(late);
  }, 60_000);

  it("answers a long-poll at once with how far it scanned, rather than waiting", async () => {
    const { page, ms } = await get("type=token.replay_blocked&wait=30&limit=100");
    expect(ms).toBeLessThan(DEADLINE_MS);
    expect(page.next).toBeDefined();
    // The page names events in order up to `next`, and `next` lies before the end.
    expect(page.items.map((e) => e.id)).toEqual(
      all
        .slice(0, all.findIndex((e) => e.id === page.next) + 1)
        .filter((e) => e.type === "token.replay_blocked")
        .map((e) => e.id),
    );
    expect(page.next).not.toBe(page.last_id);
  });
});

describe("the audit commands on a long stream", () => {
  it("writ audit export --since near the end writes every event of the range once", async () => {
    const since = new Date(T0 + EVENTS - 2500).toISOString();
    const until = new Date(T0 + EVENTS - 500).toISOString();
    let stdout = "";
    let stderr = "";
    const code = await runCli(["audit", "export", "--since", since, "--until", until], {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
      env: { WRIT_URL: server.url, WRIT_KEY: keyOf(t, "dana") },
      stderrIsTty: false,
    });
    expect({ code, stderr }).toEqual({ code: 0, stderr: "exported 2000 event(s)\n" });
    const ids = stdout
      .trimEnd()
      .split("\n")
      .map((line) => (JSON.parse(line) as EventBody).id);
    expect(ids).toEqual(all.slice(EVENTS - 2500, EVENTS - 500).map((e) => e.id));
  }, 30_000);

  it("writ audit tail --type --from-start prints every match once, walking the scans", async () => {
    const rare = all.filter((e) => e.type === "token.replay_blocked").map((e) => e.id);
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/cli/bin.ts"),
        "audit",
        "tail",
        "--json",
        "--from-start",
        "--type",
        "token.replay_blocked",
      ],
      {
        cwd: ROOT,
        env: { ...process.env, WRIT_URL: server.url, WRIT_KEY: keyOf(t, "dana"), NO_COLOR: "1" },
      },
    );
    children.push(child);
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    const exited = new Promise<number | null>((done) => child.on("close", done));
    const printed = () => stdout.split("\n").filter((line) => line !== "").length;
    await expect.poll(printed, { timeout: 30_000, interval: 100 }).toBe(rare.length);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    const ids = stdout
      .trimEnd()
      .split("\n")
      .map((line) => (JSON.parse(line) as EventBody).id);
    expect(ids).toEqual(rare);
  }, 60_000);
});
