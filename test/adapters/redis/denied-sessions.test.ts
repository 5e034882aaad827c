import { createClient } from "redis";
import { describe, expect, it } from "vitest";
import { createRedisDeniedSessions } from "../../../src/adapters/redis/denied-sessions.js";
import { WritError } from "../../../src/domain/errors.js";
import { redisWithTwoConnectionsPerFile, startRedisServer } from "../../support/redis.js";

// The ledger of sessions writ set out to deny, shared by every process on one
// Redis: any of them can find a deny missing at its source and write it back.

// Two connections, as two processes would have.
const redis = redisWithTwoConnectionsPerFile();
let n = 0;
const prefix = () => `{writ-denied-${++n}}`;
const T = Date.parse("2026-11-22T10:00:00Z");
const session = (grant: string, endsAt = T + 900_000) => ({ grant, issuedAt: T, endsAt });

function pair() {
  const keyPrefix = prefix();
  return {
    keyPrefix,
    a: createRedisDeniedSessions({ client: redis.a, name: "aws-denies", prefix: keyPrefix }),
    b: createRedisDeniedSessions({ client: redis.b, name: "aws-denies", prefix: keyPrefix }),
  };
}

describe("the Redis ledger of denied sessions", () => {
  it("shows what one process recorded to every other, by scope", async () => {
    const { a, b } = pair();
    expect(a.shared).toBe(true);
    await a.add("reports-reader", session("g1"), T + 960_000, T);
    await a.add("reports-reader", session("g2"), T + 960_000, T);
    await a.add("deployer", session("g3"), T + 960_000, T);
    expect(new Set(await b.scopes(T))).toEqual(new Set(["reports-reader", "deployer"]));
    expect(
      (await b.live("reports-reader", T)).sort((x, y) => x.grant.localeCompare(y.grant)),
    ).toEqual([session("g1"), session("g2")]);
    expect(await b.live("nobody", T)).toEqual([]);
  });

  it("forgets a session whose only claim is withdrawn, for every process", async () => {
    const { a, b } = pair();
    await a.add("role", session("kept"), T + 960_000, T);
    const claim = await a.add("role", session("unwritten"), T + 960_000, T);
    await a.withdraw("role", session("unwritten"), claim);
    expect((await b.live("role", T)).map((s) => s.grant)).toEqual(["kept"]);
    await b.withdraw("role", session("never-added"), claim);
    expect((await a.live("role", T)).map((s) => s.grant)).toEqual(["kept"]);
  });

  it("keeps a session while another end of it still claims it", async () => {
    const { a, b } = pair();
    // A complete and the expiry of one session, on two processes, each record it.
    const completing = await a.add("role", session("g"), T + 960_000, T);
    const expiring = await b.add("role", session("g"), T + 960_000, T);
    expect(completing).not.toBe(expiring);
    // The complete's write fails: only its own claim goes, twice or not.
    await a.withdraw("role", session("g"), completing);
    await a.withdraw("role", session("g"), completing);
    expect(await b.live("role", T)).toEqual([session("g")]);
    // A claim that is not the entry's takes nothing away.
    await a.withdraw("role", session("g"), "someone-else");
    expect(await a.live("role", T)).toEqual([session("g")]);
    await b.withdraw("role", session("g"), expiring);
    expect(await a.live("role", T)).toEqual([]);
  });

  it("forgets a session once it is no longer retained, and a scope with nothing left", async () => {
    const { a, b } = pair();
    await a.add("role", session("short", T + 60_000), T + 120_000, T);
    await a.add("role", session("long"), T + 960_000, T);
    await a.add("other", session("gone", T + 60_000), T + 120_000, T);
    expect((await b.live("role", T + 120_000)).map((s) => s.grant).sort()).toEqual([
      "long",
      "short",
    ]);
    expect((await b.live("role", T + 120_001)).map((s) => s.grant)).toEqual(["long"]);
    expect(await b.scopes(T + 120_001)).toEqual(["role"]);
    expect(await b.scopes(T + 960_001)).toEqual([]);
  });

  it("keeps the later retention when a session is recorded twice", async () => {
    const { a, b } = pair();
    await a.add("role", session("g"), T + 960_000, T);
    await b.add("role", session("g"), T + 500_000, T);
    expect(await a.live("role", T + 900_000)).toEqual([session("g")]);
  });

  it("lets Redis drop its keys by itself after their last entry", async () => {
    const { a, keyPrefix } = pair();
    await a.add("role", session("g"), T + 960_000, T);
    const keys = [
      `${keyPrefix}:aws-denies`,
      `${keyPrefix}:aws-denies:role`,
      `${keyPrefix}:aws-denies:claims/role/g`,
    ];
    // Every key under the prefix's hash tag, so the scripts run on Cluster.
    expect((await redis.a.keys(`${keyPrefix}*`)).sort()).toEqual([...keys].sort());
    for (const key of keys) {
      const ttl = await redis.a.pTTL(key);
      // Its last entry's retention from now, plus an hour's grace.
      expect(ttl).toBeGreaterThan(960_000 + 3_600_000 - 10_000);
      expect(ttl).toBeLessThanOrEqual(960_000 + 3_600_000);
    }
  });

  it("refuses scopes and grants that could not be told apart in a key or an entry", async () => {
    const { a } = pair();
    await expect(a.add("a role", session("g"), T + 1, T)).rejects.toThrow(TypeError);
    await expect(a.add("}{other", session("g"), T + 1, T)).rejects.toThrow(TypeError);
    await expect(a.add("role", session("g 1"), T + 1, T)).rejects.toThrow(TypeError);
    await expect(a.live("", T)).rejects.toThrow(TypeError);
    expect(await a.scopes(T)).toEqual([]);
  });

  it("answers store_unavailable when Redis cannot be reached", async () => {
    const down = await startRedisServer();
    const client = createClient({ url: down.url, socket: { reconnectStrategy: false } });
    client.on("error", () => {});
    await client.connect();
    const ledger = createRedisDeniedSessions({
      client,
      name: "aws-denies",
      operationTimeoutMs: 500,
    });
    await down.dispose();
    const failure = await ledger.add("role", session("g"), T + 1, T).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WritError);
    expect((failure as WritError).code).toBe("store_unavailable");
    await expect(ledger.scopes(T)).rejects.toMatchObject({ code: "store_unavailable" });
    await client.close().catch(() => {});
  });
});
