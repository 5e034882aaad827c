import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import type { DomainEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import { issuedToken, keyOf } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { waitFor } from "../support/wait.js";
import { ConsoleClient } from "./console-client.js";

/**
 * Refused uses of a revoked request's token: a resource server retrying it in
 * a loop records one a try. The store's deadline is cut down to 1 s with them:
 * read one by one, they take well past it.
 */
const REJECTIONS = 40_000;
const DEADLINE_MS = 1000;

let redis: RedisServer;
let client: RedisStoreClient;
let t: TestWrit;
let id: string;
let dana: ConsoleClient;

beforeAll(async () => {
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
  const store = createRedisStore({
    client,
    prefix: "revoked",
    logger: silentLogger,
    operationTimeoutMs: DEADLINE_MS,
  });
  t = await startTestWrit({}, { store });
  ({ id } = await issuedToken(t));
  const revoked = await t.call("POST", `/v1/requests/${id}/revoke`, {
    key: keyOf(t, "dana"),
    body: { reason: "token leaked in a log" },
  });
  expect(revoked.status).toBe(200);
  const rejected = (i: number): DomainEvent => ({
    type: "token.rejected",
    requestId: id,
    actor: { kind: "resource_server", id: "billing-api" },
    time: t.clock.now() + i,
    data: { status: "revoked" },
  });
  for (let start = 0; start < REJECTIONS; start += 1000) {
    await store.append(Array.from({ length: 1000 }, (_, i) => rejected(start + i)));
  }
  await waitFor(
    "the audit log to copy the stream",
    async () => (t.writ.auditFile?.lastSeq() ?? 0) > REJECTIONS,
    30_000,
  );
  dana = new ConsoleClient(t);
  expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
}, 90_000);

afterAll(async () => {
  await t?.close();
  await client?.close();
  await redis?.dispose();
});

describe("the console page of a revoked request whose token was refused very many times", () => {
  it("shows the request and who revoked it within the store's deadline", async () => {
    const res = await dana.get(`/console/requests/${id}`);
    const html = await res.text();
    expect(res.status, html.slice(0, 500)).toBe(200);
    expect(html).toContain("You revoked this request");
    expect(html).toContain("Later events");
  }, 30_000);
});
