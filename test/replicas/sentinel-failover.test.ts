import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { CUSTOMERS_EXPORT } from "../support/api.js";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import {
  type RedisSentinelServer,
  type RedisServer,
  startRedisSentinel,
  startRedisServer,
} from "../support/redis.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { APPROVAL_FLOW_EVENTS, approvalFlow, call, logFiles, loggedEventIds } from "./http.js";

// `writ serve` on Redis Sentinel while Sentinel promotes the replica: writ
// follows the new primary by itself, its change feed and audit log included,
// with no restart.

const WAIT_MS = 30_000;

let dir: string;
let primary: RedisServer;
let replica: RedisServer;
let sentinel: RedisSentinelServer;
let setup: ProductionSetup;
let writ: WritProcess;
const key = (id: string) => setup.key(id);

/** Runs `command` on a server of the test and returns its reply. */
async function ask(url: string, command: string[]): Promise<unknown> {
  const client = await createClient({ url })
    .on("error", () => {})
    .connect();
  try {
    return await client.sendCommand(command);
  } finally {
    client.destroy();
  }
}

/** A Sentinel reply's record: a flat list of names and values, or a map (RESP3). */
function fieldsOf(entry: unknown): Record<string, unknown> {
  if (!Array.isArray(entry)) return entry as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  for (let i = 0; i + 1 < entry.length; i += 2) fields[String(entry[i])] = entry[i + 1];
  return fields;
}

/** Polls `probe` until it holds, for at most `WAIT_MS`. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The port of the primary Sentinel names now. */
async function namedPrimaryPort(): Promise<number> {
  const reply = (await ask(sentinel.url, [
    "SENTINEL",
    "GET-MASTER-ADDR-BY-NAME",
    sentinel.name,
  ])) as string[];
  return Number(reply[1]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-sentinel-failover-"));
  primary = await startRedisServer();
  replica = await startRedisServer({ replicaOf: primary });
  await until("the replica to sync", async () =>
    String(await ask(replica.url, ["INFO", "replication"])).includes("master_link_status:up"),
  );
  sentinel = await startRedisSentinel(primary);
  // Sentinel learns of replicas from the primary's INFO: only a known one can be promoted.
  await until("Sentinel to know the replica", async () => {
    const replicas = (await ask(sentinel.url, [
      "SENTINEL",
      "REPLICAS",
      sentinel.name,
    ])) as unknown[];
    return replicas.some((entry) => {
      const fields = fieldsOf(entry);
      return fields.port === String(replica.port) && fields.flags === "slave";
    });
  });
  setup = await createProductionSetup(dir);
  const config = await setup.writeConfig("a", {
    redis: {
      sentinel: { name: sentinel.name, nodes: [{ host: "127.0.0.1", port: sentinel.port }] },
    },
  });
  writ = await startWritProcess(["serve", "--config", config, "--quiet"]);
}, 60_000);

afterAll(async () => {
  const code = await writ?.stop();
  await sentinel?.dispose();
  await replica?.dispose();
  await primary?.dispose();
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(0);
}, 30_000);

describe("writ serve through a Sentinel failover", () => {
  it("moves to the promoted replica by itself: changes, wake-ups and its audit log go on", async () => {
    const before = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
    expect(before.events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
    // A request waiting for reviewers across the failover.
    const pending = await call<{ id: string }>(
      writ.url,
      "POST",
      "/v1/requests",
      key("report-agent"),
      CUSTOMERS_EXPORT,
    );
    expect(pending.status).toBe(201);

    expect(await namedPrimaryPort()).toBe(primary.port);
    await ask(sentinel.url, ["SENTINEL", "FAILOVER", sentinel.name]);
    await until(
      "Sentinel to name the replica",
      async () => (await namedPrimaryPort()) === replica.port,
    );
    await until("the replica to take writes", async () =>
      String(await ask(replica.url, ["INFO", "replication"])).includes("role:master"),
    );
    // Until Sentinel turns the old primary into a replica, a write there is lost on
    // its resync (the window every asynchronous failover has): wait it out.
    await until("the old primary to follow the new one", async () => {
      const info = String(await ask(primary.url, ["INFO", "replication"]));
      return info.includes("role:slave") && info.includes(`master_port:${replica.port}`);
    });

    // Changes during the switch may answer 503 store_unavailable; then they succeed again.
    let after: Awaited<ReturnType<typeof approvalFlow>> | undefined;
    await until("a whole approval flow on the new primary", async () => {
      after = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
      return true;
    });
    expect(after?.events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
    const promoted = await createClient({ url: replica.url })
      .on("error", () => {})
      .connect();
    try {
      // writ's own connections (named "writ") are on the promoted server now.
      const clients = String(await promoted.sendCommand(["CLIENT", "LIST"]));
      expect(clients).toMatch(/ name=writ /);
      const stream = await promoted.xRange("{writ}:events", "-", "+");
      const inPromoted = new Set((stream ?? []).map((e) => e.id));
      for (const event of after?.events ?? []) expect(inPromoted.has(event.id)).toBe(true);
    } finally {
      promoted.destroy();
    }

    // The change feed reads the new primary: an approval wakes a waiting agent at once.
    const id = pending.body.id;
    const poll = call<{ status: string }>(
      writ.url,
      "GET",
      `/v1/requests/${id}?wait=20&while=pending`,
      key("report-agent"),
    );
    for (const reviewer of ["bob", "carol"]) {
      const approved = await call(
        writ.url,
        "POST",
        `/v1/requests/${id}/approve`,
        key(reviewer),
        {},
      );
      expect(approved.status).toBe(200);
    }
    const started = Date.now();
    expect((await poll).body.status).toBe("approved");
    expect(Date.now() - started).toBeLessThan(10_000);

    // Its audit log holds every event from before and after the failover, and verifies.
    expect((await call(writ.url, "GET", "/readyz")).status).toBe(200);
    const [file] = await logFiles(join(dir, "a"));
    expect(file).toBeDefined();
    const logged = await loggedEventIds(file as string);
    for (const event of [...before.events, ...(after?.events ?? [])]) {
      expect(logged.has(event.id), event.type).toBe(true);
    }
    expect(await verifyLogFile(file as string)).toMatchObject({ ok: true });
  });
});
