import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestWrit, type TestWrit } from "./support/harness.js";

describe("the spine, in-process", () => {
  let t: TestWrit;
  beforeEach(async () => {
    t = await startTestWrit();
  });
  afterEach(async () => {
    await t.close();
  });

  it("requests, approves with a quorum of two, collects once, consumes once", async () => {
    const agent = t.keys["report-agent"];
    const created = await t.call("POST", "/v1/requests", {
      key: agent,
      body: {
        action: "db:export",
        resource: "db://prod/customers",
        audience: "billing-api",
        reason: "churn",
      },
    });
    expect(created.status).toBe(201);
    const { id, status } = (await created.json()) as { id: string; status: string };
    expect(status).toBe("pending");
    expect(
      (await t.call("POST", `/v1/requests/${id}/approve`, { key: t.keys.bob, body: {} })).status,
    ).toBe(200);
    expect(
      (await t.call("POST", `/v1/requests/${id}/approve`, { key: t.keys.carol, body: {} })).status,
    ).toBe(200);
    const collected = await t.call("POST", `/v1/requests/${id}/credential`, { key: agent });
    expect(collected.status).toBe(200);
    const { credential } = (await collected.json()) as { credential: { token: string } };
    const consume = () =>
      t.call("POST", "/v1/tokens/consume", {
        key: t.keys["billing-api"],
        body: { token: credential.token },
      });
    expect((await consume()).status).toBe(200);
    expect((await consume()).status).toBe(409);
  });
});
