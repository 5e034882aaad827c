import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import type { DevIdentities } from "../../src/config/dev-identities.js";
import { CUSTOMERS_EXPORT } from "../support/api.js";
import { REPO_POLICIES } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { allEvents, call, logFiles, loggedEventIds } from "./http.js";

let dir: string;
let redis: RedisServer;
let first: WritProcess;
let second: WritProcess;
let ids: DevIdentities;

const devArgs = () => [
  "dev",
  "--data-dir",
  dir,
  "--redis-url",
  redis.url,
  "--port",
  "0",
  "--policies",
  REPO_POLICIES,
  "--quiet",
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-dev-replicas-"));
  redis = await startRedisServer();
  first = await startWritProcess(devArgs());
  // The second joins the first: same data dir (keys, identities), same Redis.
  second = await startWritProcess(devArgs());
  ids = JSON.parse(await readFile(join(dir, "dev-identities.json"), "utf8")) as DevIdentities;
}, 60_000);

afterAll(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
  await redis?.dispose();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

function keyOf(id: string): string {
  const all = [...ids.agents, ...ids.reviewers, ...ids.auditors, ...ids.resource_servers];
  const key = all.find((p) => p.id === id)?.key;
  if (key === undefined) throw new TypeError(`no demo key for ${id}`);
  return key;
}

describe("writ dev --redis-url: a second writ dev joins as a replica", () => {
  it("says it runs on Redis, and both replicas serve one set of requests", async () => {
    expect(first.stdout()).toMatch(/store: redis redis:\/\/127\.0\.0\.1:\d+ \(shared/);
    const created = await call<{ id: string }>(
      first.url,
      "POST",
      "/v1/requests",
      keyOf("report-agent"),
      CUSTOMERS_EXPORT,
    );
    expect(created.status).toBe(201);
    const { id } = created.body;
    for (const reviewer of ["bob", "carol"]) {
      const res = await call(second.url, "POST", `/v1/requests/${id}/approve`, keyOf(reviewer), {});
      expect(res.status).toBe(200);
    }
    const collected = await call<{ credential: { token: string } }>(
      first.url,
      "POST",
      `/v1/requests/${id}/credential`,
      keyOf("report-agent"),
    );
    expect(collected.status).toBe(200);
    // Signed on one replica, consumed once on the other: the same keys.
    const consume = (on: WritProcess) =>
      call(on.url, "POST", "/v1/tokens/consume", keyOf("billing-api"), {
        token: collected.body.credential.token,
      });
    expect((await consume(second)).status).toBe(200);
    expect((await consume(first)).status).toBe(409);
    const jwks = await Promise.all(
      [first, second].map(async (r) => (await call(r.url, "GET", "/.well-known/jwks.json")).body),
    );
    expect(jwks[0]).toEqual(jwks[1]);
  });

  it("names, at start, the audit log directory each replica writes", async () => {
    // The second process cannot take audit/ (the first holds it) and writes
    // audit/replicas/2; the line a user copies into `writ audit verify` says so.
    expect(first.stdout()).toContain(`audit log: ${join(dir, "audit")}\n`);
    expect(second.stdout()).toContain(`audit log: ${join(dir, "audit", "replicas", "2")}\n`);
  });

  it("keeps one log per replica in the data dir, each complete and verifiable", async () => {
    const stream = (await allEvents(first.url, keyOf("dana"))).map((e) => e.id);
    expect(stream.length).toBeGreaterThan(0);
    const files = await logFiles(dir);
    expect(files).toHaveLength(2);
    for (const file of files) {
      await expect
        .poll(
          async () => {
            const logged = await loggedEventIds(file);
            return stream.filter((id) => !logged.has(id)).length;
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBe(0);
      expect(await verifyLogFile(file), file).toMatchObject({ ok: true });
    }
  });
});
