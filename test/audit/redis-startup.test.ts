import { randomBytes } from "node:crypto";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectRedis, createRedisStore } from "../../src/adapters/redis-store.js";
import { parseCheckpointPublicKeys } from "../../src/audit/checkpoint-key.js";
import { verifyAuditLog } from "../../src/audit/verify-log.js";
import { devPrincipals, loadOrCreateDevIdentities } from "../../src/config/dev-identities.js";
import { parseConfig } from "../../src/config/load.js";
import { assembleWrit, type Writ } from "../../src/config/wire.js";
import { FOLLOWER_ID_FILE, openRedisBackend } from "../../src/config/wire-redis.js";
import { NO_REQUEST } from "../../src/domain/events.js";
import type { Logger } from "../../src/ports/logger.js";
import { silentLogger } from "../../src/ports/logger.js";
import { sampleEvent, sampleRequest } from "../adapters/store-contract.js";
import { type EventBody, S3_READ } from "../support/api.js";
import { ManualClock, REPO_POLICIES } from "../support/harness.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";

// `writ serve`'s start on Redis, in-process: the Redis backend and the whole
// writ wired as `startWrit` wires them, over a data dir whose audit log a
// previous run left behind, against a real redis-server.

let server: RedisServer;
let dataDir: string;
let prefix: string;

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  await server?.dispose();
});

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-redis-start-"));
  prefix = `t${randomBytes(6).toString("hex")}`;
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  return { lines, info: keep("info"), warn: keep("warn"), error: keep("error") };
}

interface Started {
  writ: Writ;
  agentKey: string;
  auditorKey: string;
}

/** Starts writ on the test's data dir and Redis prefix, as `writ serve` does (without listening). */
async function start(logger: Logger = silentLogger): Promise<Started> {
  const config = parseConfig({
    data_dir: dataDir,
    policies: { dir: REPO_POLICIES, watch: false },
    redis: { url: server.url, key_prefix: prefix },
  });
  const backend = await openRedisBackend(config, {}, { logger });
  const { identities } = await loadOrCreateDevIdentities(dataDir);
  try {
    const writ = await assembleWrit(config, {
      clock: new ManualClock(),
      logger,
      extraPrincipals: devPrincipals(identities),
      createCheckpointKey: true,
      store: backend.store,
      rateLimiter: backend.rateLimiter,
      notificationState: backend.notificationState,
      onAuditDurable: backend.onAuditDurable,
    });
    return {
      writ,
      agentKey: identities.agents[0]?.key ?? "",
      auditorKey: identities.auditors[0]?.key ?? "",
    };
  } catch (error) {
    await backend.store.close();
    throw error;
  }
}

async function createRequest(started: Started): Promise<string> {
  const res = await started.writ.app.request("/v1/requests", {
    method: "POST",
    headers: { authorization: `Bearer ${started.agentKey}`, "content-type": "application/json" },
    body: JSON.stringify(S3_READ),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function events(started: Started, query: string): Promise<EventBody[]> {
  const res = await started.writ.app.request(`/v1/events?${query}`, {
    headers: { authorization: `Bearer ${started.auditorKey}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: EventBody[] }).items;
}

/** The log's entries, and whether it verifies with its checkpoint key. */
async function readLog(writ: Writ) {
  const dir = join(dataDir, "audit");
  const lines = (await readFile(join(dir, "audit-000001.jsonl"), "utf8")).trimEnd().split("\n");
  const entries = lines.map(
    (line) => JSON.parse(line) as { seq: number; type: string; event_id: string; data: object },
  );
  const keys = parseCheckpointPublicKeys(
    JSON.stringify(writ.auditIntegrity.checkpointKey().jwk),
    "test",
  );
  return { entries, verified: await verifyAuditLog({ dir, keys }) };
}

describe("writ on Redis starting over an audit log a crash tore", () => {
  it("starts, records audit.repaired (no request), and the log verifies", async () => {
    const first = await start();
    const requestId = await createRequest(first);
    await first.writ.close();
    const torn = '{"seq":99,"time":"2026-01-15T09:0';
    await appendFile(join(dataDir, "audit", "audit-000001.jsonl"), torn);

    const second = await start();
    try {
      const repaired = await events(second, "type=audit.repaired");
      expect(repaired).toEqual([
        expect.objectContaining({
          type: "audit.repaired",
          request_id: NO_REQUEST,
          actor: { kind: "system", id: "writ" },
          data: {
            log: ".",
            segment: "audit-000001.jsonl",
            dropped_bytes: torn.length,
            checkpoint_dropped_bytes: 0,
          },
        }),
      ]);
      // It belongs to no request: the request's own events do not include it.
      const ofRequest = await events(second, `request_id=${requestId}`);
      expect(ofRequest.length).toBeGreaterThan(0);
      expect(ofRequest.map((e) => e.type)).not.toContain("audit.repaired");
      // The writ serves as usual after the repair.
      await createRequest(second);
    } finally {
      await second.writ.close();
    }

    const { entries, verified } = await readLog(second.writ);
    const repairedAt = entries.findIndex((e) => e.type === "audit.repaired");
    // Right after the entry the cut left last, then the later request's events.
    expect(entries[repairedAt - 1]?.type).not.toBe("audit.repaired");
    expect(entries.filter((e) => e.type === "request.created")).toHaveLength(2);
    expect(entries.slice(repairedAt + 1).map((e) => e.type)).toContain("request.created");
    expect(verified).toMatchObject({ ok: true, entries: entries.length });
  });
});

describe("writ on Redis starting over an audit log a crash tore, while Redis refuses writes", () => {
  it("cuts the torn line, fails to start, and records the repair at the next start", async () => {
    const first = await start();
    await createRequest(first);
    await first.writ.close();
    const segment = join(dataDir, "audit", "audit-000001.jsonl");
    const torn = '{"seq":99,"time":"2026-01-15T09:0';
    await appendFile(segment, torn);

    // Out of memory, Redis refuses the audit.repaired event: the start fails after the cut.
    await redisCommand(server.url, ["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    await redisCommand(server.url, ["CONFIG", "SET", "maxmemory", "1"]);
    try {
      await expect(start()).rejects.toMatchObject({ code: "store_unavailable" });
    } finally {
      await redisCommand(server.url, ["CONFIG", "SET", "maxmemory", "0"]);
    }
    expect(await readFile(segment, "utf8")).not.toContain(torn);

    const second = await start();
    try {
      expect(await events(second, "type=audit.repaired")).toEqual([
        expect.objectContaining({
          data: {
            log: ".",
            segment: "audit-000001.jsonl",
            dropped_bytes: torn.length,
            checkpoint_dropped_bytes: 0,
          },
        }),
      ]);
    } finally {
      await second.writ.close();
    }
    const { entries, verified } = await readLog(second.writ);
    expect(entries.filter((e) => e.type === "audit.repaired")).toHaveLength(1);
    expect(verified).toMatchObject({ ok: true, entries: entries.length });

    // Recorded once: a later start does not report it again.
    const third = await start();
    await third.writ.close();
    expect(
      (await readLog(third.writ)).entries.filter((e) => e.type === "audit.repaired"),
    ).toHaveLength(1);
  });
});

describe("a replica whose log's tail was trimmed from the Redis stream while it was away", () => {
  it("records the range its log lacks as audit.gap, logs an error, and its log verifies", async () => {
    const first = await start();
    await createRequest(first);
    await first.writ.close();
    const before = await readLog(first.writ);
    const after = before.entries.at(-1)?.event_id as string;
    const followerId = (await readFile(join(dataDir, "audit", FOLLOWER_ID_FILE), "utf8")).trim();

    // Meanwhile another replica goes on, and the stream is trimmed behind it: this
    // replica was away past the follower timeout, so its record no longer counts.
    const client = await connectRedis({ url: server.url, logger: silentLogger });
    const other = createRedisStore({
      client,
      prefix,
      streamTrim: { maxLen: 100, followerTimeoutMs: 60_000, intervalMs: 3_600_000 },
      closeClient: true,
      logger: silentLogger,
    });
    let firstAvailable: string;
    try {
      const raw = createClient({ url: server.url });
      await raw.connect();
      await raw.hDel(`{${prefix}}:followers`, followerId);
      await raw.close();
      const request = sampleRequest();
      let last: string | undefined;
      for (let n = 0; n < 1000; n += 100) {
        const batch = Array.from({ length: 100 }, (_, i) =>
          sampleEvent(request.id, "token.replay_blocked", { n: n + i }),
        );
        last = (await other.append(batch)).at(-1)?.id;
      }
      await other.recordLogCursor("other-replica", last);
      expect((await other.trimStream()).removed).toBeGreaterThan(0);
      firstAvailable = (await other.events({ limit: 1 }))[0]?.id as string;
    } finally {
      await other.close();
    }

    const logger = recordingLogger();
    const second = await start(logger);
    try {
      // Recorded by the log's follower before it reads on, while the writ starts.
      await expect
        .poll(() => events(second, "type=audit.gap"))
        .toEqual([
          expect.objectContaining({
            type: "audit.gap",
            request_id: NO_REQUEST,
            actor: { kind: "system", id: "writ" },
            data: { follower: followerId, after, first_available: firstAvailable },
          }),
        ]);
    } finally {
      // Closing writes what the stream holds, the gap's record included.
      await second.writ.close();
    }
    expect(logger.lines.filter((l) => l.startsWith("error ")).join("\n")).toMatch(/audit\.gap/);

    const { entries, verified } = await readLog(second.writ);
    const gapEntries = entries.filter((e) => e.type === "audit.gap");
    expect(gapEntries).toEqual([
      expect.objectContaining({
        data: { follower: followerId, after, first_available: firstAvailable },
      }),
    ]);
    // The log goes on from its last entry to the oldest event the stream still held.
    const resumed = entries[before.entries.length];
    expect(resumed?.event_id).toBe(firstAvailable);
    expect(verified).toMatchObject({ ok: true, entries: entries.length });
  });
});
