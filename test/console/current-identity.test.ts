import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
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

describe("a console session after the configuration changed", () => {
  const dirs: string[] = [];
  const writs: Writ[] = [];
  afterEach(async () => {
    for (const writ of writs.splice(0)) await writ.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  /** Two replicas on one store and one session store, differing only in their reviewers. */
  async function replicas(
    edit: (reviewers: DevIdentities["reviewers"]) => DevIdentities["reviewers"],
  ) {
    const home = await mkdtemp(join(tmpdir(), "writ-console-ids-"));
    dirs.push(home);
    const { identities } = await loadOrCreateDevIdentities(home);
    const clock = new ManualClock();
    const store: RequestStore = createMemoryStore();
    const sessions: SessionStore = createSessionStore({
      clock,
      idleTimeoutSeconds: 1800,
      maxAgeSeconds: 28_800,
    });
    const replica = async (reviewers: DevIdentities["reviewers"]) => {
      const dataDir = await mkdtemp(join(tmpdir(), "writ-console-ids-"));
      dirs.push(dataDir);
      const writ = await assembleWrit(
        parseConfig({ data_dir: dataDir, policies: { dir: REPO_POLICIES, watch: false } }),
        {
          clock,
          logger: silentLogger,
          store,
          consoleSessions: sessions,
          extraPrincipals: devPrincipals({ ...identities, reviewers }),
        },
      );
      writs.push(writ);
      return writ;
    };
    const before = await replica(identities.reviewers);
    const after = await replica(edit(identities.reviewers));
    const key = (id: string) =>
      [...identities.agents, ...identities.reviewers].find((p) => p.id === id)?.key as string;
    // ConsoleClient drives any object with the app and the keys of its people.
    const as = (writ: Writ) => ({ writ, keys: {}, clock }) as unknown as TestWrit;
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
