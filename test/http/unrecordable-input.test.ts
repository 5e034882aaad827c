import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreConnection,
} from "../../src/adapters/redis-store.js";
import type { Agent } from "../../src/domain/principal.js";
import { normalizeReason } from "../../src/notify/slack/interactions.js";
import { silentLogger } from "../../src/ports/logger.js";
import {
  allEvents,
  allRequests,
  CUSTOMERS_EXPORT,
  createRequest,
  expectError,
  keyOf,
  type RequestBody,
  readRequest,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";

// The audit log hashes the RFC 8785 form of every event, which has no lone
// UTF-16 surrogates and no numbers beyond a double. JSON text can still spell
// both ("\ud800", 1e400). Such input must be a 400 that records nothing: once
// committed, an event the log cannot write would stop it for every later change.

const LONE = "a\ud800b";

/** A create body with one field replaced, as JSON text (JSON.stringify escapes lone surrogates). */
const createWith = (fields: Record<string, unknown>) => JSON.stringify({ ...S3_READ, ...fields });

let t: TestWrit;
afterEach(async () => {
  await t?.close();
});

async function expectNothingRecordedAndLogWritable(before: number) {
  expect(await allRequests(t)).toHaveLength(before);
  // The log still takes changes: the next ordinary request is created.
  await createRequest(t, S3_READ);
  expect(await allRequests(t)).toHaveLength(before + 1);
}

describe("input the audit log could not record exactly", () => {
  const cases: [string, string][] = [
    ["a lone surrogate in the reason", createWith({ reason: LONE })],
    ["a lone surrogate in the resource", createWith({ resource: `db://x/${LONE}` })],
    ["a lone surrogate in the ticket", createWith({ ticket: LONE })],
    ["a lone surrogate in the audience", createWith({ audience: LONE })],
    ["a lone surrogate in a context value", createWith({ context: { note: [LONE] } })],
    ["a lone surrogate in a context key", createWith({ context: { [LONE]: 1 } })],
    ["a low surrogate alone", createWith({ reason: "x\udc00" })],
    [
      "a number too large for a double in the context",
      `{"action":"${S3_READ.action}","resource":"${S3_READ.resource}","audience":"${S3_READ.audience}","context":{"rows":1e400}}`,
    ],
  ];
  for (const [name, body] of cases) {
    it(`${name} is a 400 and records nothing`, async () => {
      t = await startTestWrit();
      const res = await t.call("POST", "/v1/requests", { key: keyOf(t, "report-agent"), body });
      await expectError(res, 400, "validation_failed");
      await expectNothingRecordedAndLogWritable(0);
    });
  }

  it("a well-formed pair (an emoji) is accepted and recorded as sent", async () => {
    t = await startTestWrit();
    const created = await createRequest(t, { ...S3_READ, reason: "done \ud83d\ude80" });
    const stored = (await readRequest(t, created.id)) as RequestBody & { reason?: string };
    expect(stored.reason).toBe("done 🚀");
  });

  it("reviewers' comments and deny reasons are refused the same way", async () => {
    t = await startTestWrit();
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const approve = await t.call("POST", `/v1/requests/${id}/approve`, {
      key: keyOf(t, "bob"),
      body: { comment: LONE },
    });
    await expectError(approve, 400, "validation_failed");
    const deny = await t.call("POST", `/v1/requests/${id}/deny`, {
      key: keyOf(t, "bob"),
      body: { reason: LONE },
    });
    await expectError(deny, 400, "validation_failed");
    expect((await readRequest(t, id)).reviews).toEqual([]);
    await expectNothingRecordedAndLogWritable(1);
  });

  it("the Slack deny modal refuses such a reason too", () => {
    expect(normalizeReason(LONE)).toBeUndefined();
    expect(normalizeReason("not needed \ud83d\ude80")).toBe("not needed 🚀");
  });

  it("a change that got past validation is refused before its commit, not after", async () => {
    // The use case checks every event before the store sees it, whatever the channel.
    t = await startTestWrit();
    const agent = t.writ.broker.deps.identities.agent("report-agent") as Agent;
    await expect(
      t.writ.broker.request(agent, {
        action: S3_READ.action,
        resource: S3_READ.resource,
        audience: S3_READ.audience,
        credentialType: "jwt",
        reason: LONE,
        context: {},
      }),
    ).rejects.toMatchObject({ code: "validation_failed" });
    expect(t.writ.broker.deps.auditLog.writable()).toBe(true);
    await expectNothingRecordedAndLogWritable(0);
  });
});

describe("on Redis", () => {
  let server: RedisServer;
  let client: RedisStoreConnection;
  beforeAll(async () => {
    server = await startRedisServer();
    client = await connectRedis({ url: server.url, logger: silentLogger });
  });
  afterAll(async () => {
    await client?.close();
    await server?.dispose();
  });

  it("a refused request leaves nothing in the stream for a restarted log to stop on", async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const store = () => createRedisStore({ client, prefix, logger: silentLogger });
    t = await startTestWrit({}, { store: store() });
    const before = (await allEvents(t)).length;
    const res = await t.call("POST", "/v1/requests", {
      key: keyOf(t, "report-agent"),
      body: createWith({ reason: LONE }),
    });
    await expectError(res, 400, "validation_failed");
    expect(await allEvents(t)).toHaveLength(before);
    await createRequest(t, S3_READ);
    expect((await allEvents(t)).length).toBeGreaterThan(before);
  });
});
