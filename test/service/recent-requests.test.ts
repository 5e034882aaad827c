import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import type { RequestStore } from "../../src/ports/store.js";
import { createRecentRequests } from "../../src/service/recent-requests.js";
import {
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/**
 * Two writs on one store, as two processes on one Redis: each remembers what it
 * committed, and each must still answer from the stored state whenever the
 * other changed a request since.
 */
describe("changes that follow this process's own", () => {
  let store: RequestStore;
  let gets = 0;
  let a: TestWrit;
  let b: TestWrit;

  beforeAll(async () => {
    const shared = createMemoryStore();
    // Counts reads of a request; everything else goes straight to the store.
    store = new Proxy(shared, {
      get(target, name, receiver) {
        if (name === "get") {
          return (id: string) => {
            gets++;
            return target.get(id);
          };
        }
        return Reflect.get(target, name, receiver);
      },
    });
    a = await startTestWrit({}, { store });
    b = await startTestWrit({}, { store });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  const consume = (t: TestWrit, token: string) =>
    t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });

  it("skip reading the store: create, collect and consume on one process read nothing", async () => {
    const before = gets;
    const { id } = await createRequest(a, S3_READ);
    const token = await collectToken(a, id);
    await expectJson(await consume(a, token), 200);
    expect(gets).toBe(before);
  });

  it("commit on the stored state when another process changed the request first", async () => {
    const { id } = await createRequest(a, S3_READ);
    // b cancels; a still remembers the request approved.
    await expectJson(
      await b.call("POST", `/v1/requests/${id}/cancel`, { key: keyOf(b, "report-agent") }),
      200,
    );
    await expectError(
      await a.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(a, "report-agent") }),
      410,
      "request_cancelled",
    );
  });

  it("never refuse on a remembered state: a request approved elsewhere is collected", async () => {
    const { id, status } = await createRequest(a, CUSTOMERS_EXPORT);
    expect(status).toBe("pending");
    await approveAs(b, "bob", id);
    await approveAs(b, "carol", id);
    // a remembers it pending, which would answer approval_pending.
    expect(await collectToken(a, id)).toMatch(/^ey/);
  });

  it("answer refusals from the stored state: a review after a deny elsewhere is not pending", async () => {
    const { id } = await createRequest(a, CUSTOMERS_EXPORT);
    await approveAs(a, "bob", id);
    await expectJson(
      await b.call("POST", `/v1/requests/${id}/deny`, {
        key: keyOf(b, "carol"),
        body: { reason: "not this quarter" },
      }),
      200,
    );
    // a remembers it pending with bob's approval, which would answer already_reviewed.
    await expectError(
      await a.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(a, "bob"), body: {} }),
      409,
      "request_not_pending",
    );
  });
});

describe("createRecentRequests", () => {
  it("keeps the most recently remembered requests within its limit", async () => {
    const t = await startTestWrit();
    try {
      const recent = createRecentRequests(2);
      const made = await Promise.all([1, 2, 3].map(() => createRequest(t, S3_READ)));
      const stored = await Promise.all(made.map((r) => t.writ.broker.deps.store.get(r.id)));
      for (const request of stored) if (request !== undefined) recent.remember(request);
      expect(made.map((r) => recent.get(r.id)?.id)).toEqual([undefined, made[1]?.id, made[2]?.id]);
      recent.forget(made[2]?.id as string);
      expect(recent.get(made[2]?.id as string)).toBeUndefined();
      expect(() => createRecentRequests(0)).toThrow(TypeError);
    } finally {
      await t.close();
    }
  });
});
