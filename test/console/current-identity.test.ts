import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createRedisSessionStore } from "../../src/adapters/redis/console-sessions.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreConnection,
} from "../../src/adapters/redis-store.js";
import {
  type DevIdentities,
  devPrincipals,
  loadOrCreateDevIdentities,
} from "../../src/config/dev-identities.js";
import { parseConfig } from "../../src/config/load.js";
import { assembleWrit, type Writ } from "../../src/config/wire.js";
import { createSessionStore, type SessionStore } from "../../src/console/sessions.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf, S3_READ } from "../support/api.js";
import { ManualClock, REPO_POLICIES, startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { ConsoleClient } from "./console-client.js";

// A console session remembers who signed in, not what they may do: every
// request asks the configuration in force on the replica that serves it.

/**
 * Two replicas on one request store and one session store, differing only in
 * their reviewers; every writ and directory made is added to `made` for cleanup.
 */
async function twoReplicas(
  made: { dirs: string[]; writs: Writ[] },
  sessions: (clock: ManualClock) => SessionStore,
  edit: (reviewers: DevIdentities["reviewers"]) => DevIdentities["reviewers"],
) {
  const home = await mkdtemp(join(tmpdir(), "writ-console-ids-"));
  made.dirs.push(home);
  const { identities } = await loadOrCreateDevIdentities(home);
  const clock = new ManualClock();
  const store: RequestStore = createMemoryStore();
  const consoleSessions = sessions(clock);
  const replica = async (reviewers: DevIdentities["reviewers"]) => {
    const dataDir = await mkdtemp(join(tmpdir(), "writ-console-ids-"));
    made.dirs.push(dataDir);
    const writ = await assembleWrit(
      parseConfig({ data_dir: dataDir, policies: { dir: REPO_POLICIES, watch: false } }),
      {
        clock,
        logger: silentLogger,
        store,
        consoleSessions,
        extraPrincipals: devPrincipals({ ...identities, reviewers }),
      },
    );
    made.writs.push(writ);
    return writ;
  };
  const before = await replica(identities.reviewers);
  const after = await replica(edit(identities.reviewers));
  // ConsoleClient drives any object with the app and the keys of its people.
  const as = (writ: Writ) => ({ writ, keys: {}, clock }) as unknown as TestWrit;
  return { identities, before, after, as };
}

const SESSION_LIMITS = { idleTimeoutSeconds: 1800, maxAgeSeconds: 28_800 };

describe("a console session after the configuration changed", () => {
  const dirs: string[] = [];
  const writs: Writ[] = [];
  afterEach(async () => {
    for (const writ of writs.splice(0)) await writ.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  /** Two replicas sharing sessions in memory, differing only in their reviewers. */
  async function replicas(
    edit: (reviewers: DevIdentities["reviewers"]) => DevIdentities["reviewers"],
  ) {
    const { identities, before, after, as } = await twoReplicas(
      { dirs, writs },
      (clock) => createSessionStore({ clock, ...SESSION_LIMITS }),
      edit,
    );
    const key = (id: string) =>
      [...identities.agents, ...identities.reviewers].find((p) => p.id === id)?.key as string;
    return { before, after, key, as };
  }

  const api = (writ: Writ, key: string, path: string, body?: unknown) =>
    writ.app.request(path, {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  async function pendingExport(writ: Writ, agentKey: string): Promise<string> {
    const res = await api(writ, agentKey, "/v1/requests", CUSTOMERS_EXPORT);
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  it("a reviewer removed from the configuration can no longer approve, and is signed out", async () => {
    const { before, after, key, as } = await replicas((r) => r.filter((p) => p.id !== "bob"));
    const bob = new ConsoleClient(as(before));
    expect((await bob.signIn(key("bob"))).status).toBe(303);
    const id = await pendingExport(after, key("report-agent"));
    expect((await api(after, key("bob"), `/v1/requests/${id}/approve`, {})).status).toBe(401);

    const onAfter = new ConsoleClient(as(after));
    for (const [name, value] of bob.cookies) onAfter.cookies.set(name, value);
    const csrf = await bob.csrf();
    const approve = await onAfter.post(`/console/requests/${id}/approve`, { csrf });
    expect(approve.status).toBe(401);
    const read = await api(after, key("report-agent"), `/v1/requests/${id}`);
    expect(((await read.json()) as { reviews: unknown[] }).reviews).toEqual([]);
    // The session is gone for every replica, the one that still knows bob included.
    expect((await bob.get("/console/requests")).status).toBe(303);
  });

  it("a reviewer moved out of the approving group acts with their groups of now", async () => {
    const { before, after, key, as } = await replicas((r) =>
      r.map((p) => (p.id === "bob" ? { ...p, groups: ["finance"] } : p)),
    );
    const bob = new ConsoleClient(as(before));
    expect((await bob.signIn(key("bob"))).status).toBe(303);
    const id = await pendingExport(after, key("report-agent"));
    const onAfter = new ConsoleClient(as(after));
    for (const [name, value] of bob.cookies) onAfter.cookies.set(name, value);
    const approve = await onAfter.post(`/console/requests/${id}/approve`, {
      csrf: await bob.csrf(),
    });
    expect(approve.status).toBe(403);
    const read = await api(after, key("report-agent"), `/v1/requests/${id}`);
    expect(((await read.json()) as { reviews: unknown[] }).reviews).toEqual([]);
  });
});

describe.each(["in memory", "in Redis"])("a console session %s after a key rotation", (where) => {
  const dirs: string[] = [];
  const writs: Writ[] = [];
  let redis: RedisServer | undefined;
  let connection: ReturnType<typeof createClient> | undefined;
  beforeAll(async () => {
    if (where !== "in Redis") return;
    redis = await startRedisServer();
    connection = createClient({ url: redis.url });
    connection.on("error", () => {});
    await connection.connect();
  });
  afterAll(async () => {
    connection?.destroy();
    await redis?.dispose();
  });
  afterEach(async () => {
    for (const writ of writs.splice(0)) await writ.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  /** Two replicas sharing a store and sessions; on the second, bob holds a new key. */
  async function rotated() {
    const newKey = generateKey("reviewer");
    const { identities, before, after, as } = await twoReplicas(
      { dirs, writs },
      (clock) =>
        connection === undefined
          ? createSessionStore({ clock, ...SESSION_LIMITS })
          : createRedisSessionStore({
              client: connection,
              prefix: `{t${randomBytes(6).toString("hex")}}`,
              clock,
              ...SESSION_LIMITS,
            }),
      (reviewers) => reviewers.map((p) => (p.id === "bob" ? { ...p, key: newKey } : p)),
    );
    const oldKey = identities.reviewers.find((p) => p.id === "bob")?.key as string;
    const agentKey = identities.agents[0]?.key as string;
    const aliceKey = identities.reviewers.find((p) => p.id === "alice")?.key as string;
    return { before, after, oldKey, newKey, agentKey, aliceKey, as };
  }

  const onReplica = (client: ConsoleClient, replica: ConsoleClient) => {
    for (const [name, value] of client.cookies) replica.cookies.set(name, value);
    return replica;
  };

  it("signs out the session opened with the old key, on every replica", async () => {
    const { before, after, oldKey, newKey, agentKey, as } = await rotated();
    const bob = new ConsoleClient(as(before));
    expect((await bob.signIn(oldKey)).status).toBe(303);
    const csrf = await bob.csrf();
    const res = await after.app.request("/v1/requests", {
      method: "POST",
      headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" },
      body: JSON.stringify(CUSTOMERS_EXPORT),
    });
    const id = ((await res.json()) as { id: string }).id;

    const approve = await onReplica(bob, new ConsoleClient(as(after))).post(
      `/console/requests/${id}/approve`,
      { csrf },
    );
    expect(approve.status).toBe(401);
    const read = await after.app.request(`/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${agentKey}` },
    });
    expect(((await read.json()) as { reviews: unknown[] }).reviews).toEqual([]);
    // Gone for every replica, the one that still knows the old key included.
    expect((await bob.get("/console/requests")).status).toBe(303);

    // The new key signs in where it is configured.
    const again = new ConsoleClient(as(after));
    expect((await again.signIn(newKey)).status).toBe(303);
    expect((await again.get("/console/requests")).status).toBe(200);

    // What the session keeps names the key without giving it, or its hash, away.
    if (connection !== undefined) {
      const stored = JSON.stringify(
        await Promise.all((await connection.keys("*console*")).map((k) => connection?.hGetAll(k))),
      );
      for (const secret of [oldKey, newKey, hashKey(oldKey), hashKey(newKey)]) {
        expect(stored).not.toContain(secret);
      }
    }
  });

  it("keeps the sessions of everyone whose key did not change", async () => {
    const { before, after, aliceKey, as } = await rotated();
    const alice = new ConsoleClient(as(before));
    expect((await alice.signIn(aliceKey)).status).toBe(303);
    expect(
      (await onReplica(alice, new ConsoleClient(as(after))).get("/console/pending")).status,
    ).toBe(200);
  });
});

describe("the console's list on the Redis store", () => {
  let server: RedisServer;
  let client: RedisStoreConnection;
  let t: TestWrit;
  beforeAll(async () => {
    server = await startRedisServer();
    client = await connectRedis({ url: server.url, logger: silentLogger });
    const prefix = `t${randomBytes(6).toString("hex")}`;
    t = await startTestWrit(
      {},
      { store: createRedisStore({ client, prefix, logger: silentLogger }) },
    );
    for (let i = 0; i < 55; i++) {
      t.clock.advance(1);
      await createRequest(t, S3_READ);
    }
  });
  afterAll(async () => {
    await t?.close();
    await client?.close();
    await server?.dispose();
  });

  it("follows its own 'Older' link (Redis list positions are 27 digits)", async () => {
    const dana = new ConsoleClient(t);
    expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
    const html = await (await dana.get("/console/requests")).text();
    const older = /href="(\/console\/requests\?[^"]*)">Older/
      .exec(html)?.[1]
      ?.replaceAll("&amp;", "&");
    expect(older).toMatch(/cursor=\d{27}/);
    const page = await dana.get(older as string);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("req_");
  });
});
