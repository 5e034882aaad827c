import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  type EventPage,
  expectError,
  expectJson,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit;

beforeEach(async () => {
  t = await startTestWrit();
});

afterEach(async () => {
  await t.close();
});

const events = async (query: string) =>
  expectJson<EventPage>(await t.call("GET", `/v1/events?${query}`, { key: keyOf(t, "dana") }), 200);

describe("GET /v1/events time bounds, last_id and long-poll", () => {
  it("selects by time: since inclusive, until exclusive", async () => {
    await createRequest(t, S3_READ);
    t.clock.advance(3600);
    const later = await createRequest(t, S3_READ);
    const since = await events("since=2026-01-15T10:00:00.000Z");
    expect(new Set(since.items.map((e) => e.request_id))).toEqual(new Set([later.id]));
    const until = await events("until=2026-01-15T10:00:00.000Z");
    expect(until.items.some((e) => e.request_id === later.id)).toBe(false);
    expect(until.items.length).toBeGreaterThan(0);
    const none = await events("since=2026-01-15T09:30:00Z&until=2026-01-15T09:45:00Z");
    expect(none.items).toEqual([]);
  });

  it("names the newest event id, so a filtered follower can move past what did not match", async () => {
    const empty = await events("limit=1");
    expect(empty).toEqual({ items: [] });
    await createRequest(t, S3_READ);
    const all = await events("limit=1000");
    const newest = all.items.at(-1)?.id;
    expect(all.last_id).toBe(newest);
    const issued = await events("type=credential.issued");
    expect(issued.items).toEqual([]);
    expect(issued.last_id).toBe(newest);
  });

  it("long-polls until a matching event arrives, not merely any event", async () => {
    const { id } = await createRequest(t, S3_READ);
    const { last_id } = await events("limit=1");
    const started = Date.now();
    const waiting = events(`type=credential.issued&wait=20&after=${last_id}`);
    // A non-matching event first, then the matching one.
    await createRequest(t, CUSTOMERS_EXPORT);
    await collectToken(t, id);
    const page = await waiting;
    expect(page.items.map((e) => [e.type, e.request_id])).toEqual([["credential.issued", id]]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("answers an empty page when the wait ends with nothing new", async () => {
    await createRequest(t, S3_READ);
    const { last_id } = await events("limit=1");
    const page = await events(`after=${last_id}&wait=1`);
    expect(page.items).toEqual([]);
    expect(page.last_id).toBe(last_id);
  });

  it("refuses bad, hostile and unauthenticated queries", async () => {
    const dana = keyOf(t, "dana");
    for (const query of [
      "wait=61",
      "wait=-1",
      "wait=abc",
      "since=yesterday",
      "until=2026-01-15",
      "since=2026-01-15T09:00:00%2B01:00",
      `since=${"9".repeat(5000)}`,
    ]) {
      await expectError(
        await t.call("GET", `/v1/events?${query}`, { key: dana }),
        400,
        "validation_failed",
      );
    }
    await expectError(await t.call("GET", "/v1/events?wait=5"), 401, "unauthenticated");
    await expectError(
      await t.call("GET", "/v1/events?wait=5", { key: keyOf(t, "bob") }),
      403,
      "wrong_principal_kind",
    );
  });
});

describe("GET /v1/audit/checkpoint-key", () => {
  it("answers without a key, and whatever Authorization header comes with it", async () => {
    const plain = await expectJson<{ key_id: string }>(
      await t.call("GET", "/v1/audit/checkpoint-key"),
      200,
    );
    const withJunk = await expectJson<{ key_id: string }>(
      await t.call("GET", "/v1/audit/checkpoint-key", {
        headers: { authorization: "Bearer nope" },
      }),
      200,
    );
    expect(withJunk.key_id).toBe(plain.key_id);
    expect((await t.call("POST", "/v1/audit/checkpoint-key", { body: {} })).status).toBe(401);
  });
});
