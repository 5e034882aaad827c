import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequest, expectError, keyOf, S3_READ } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/**
 * A route that exists but does not take the method answers 405 with an `Allow`
 * header (RFC 9110, 15.5.6), not a 404 that says the route is not there.
 */
describe("405 method_not_allowed", () => {
  let t: TestWrit;

  beforeAll(async () => {
    t = await startTestWrit();
  });
  afterAll(async () => {
    await t.close();
  });

  it("answers a known route called with another method, naming the methods it takes", async () => {
    const { id } = await createRequest(t, S3_READ);
    const cases: [string, string, string, string][] = [
      ["GET", "/v1/tokens/consume", "billing-api", "POST"],
      ["DELETE", `/v1/requests/${id}`, "report-agent", "GET, HEAD"],
      ["PUT", "/v1/requests", "report-agent", "GET, HEAD, POST"],
      ["GET", `/v1/requests/${id}/approve`, "bob", "POST"],
      ["POST", "/v1/events", "dana", "GET, HEAD"],
    ];
    for (const [method, path, who, allow] of cases) {
      const res = await t.call(method, path, { key: keyOf(t, who) });
      await expectError(res, 405, "method_not_allowed");
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
    }
    for (const [method, path, allow] of [
      ["POST", "/healthz", "GET, HEAD"],
      ["DELETE", "/.well-known/jwks.json", "GET, HEAD"],
      ["POST", "/v1/audit/checkpoint-key", "GET, HEAD"],
    ] as const) {
      const res = await t.call(method, path, {});
      // The checkpoint key sits under /v1, where the key is checked first.
      if (path.startsWith("/v1/")) {
        await expectError(res, 401, "unauthenticated");
        continue;
      }
      await expectError(res, 405, "method_not_allowed");
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
    }
  });

  it("still answers 401 before anything about the route to a caller without a key", async () => {
    await expectError(await t.call("GET", "/v1/tokens/consume"), 401, "unauthenticated");
  });

  it("still answers 404 for a path no route serves", async () => {
    for (const path of ["/v1/nothing", "/v1/requests/x/y/z", "/nothing"]) {
      const res = await t.call("GET", path, { key: keyOf(t, "dana") });
      await expectError(res, 404, "not_found");
      expect(res.headers.get("allow")).toBeNull();
    }
  });
});
