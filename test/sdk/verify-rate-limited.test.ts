import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWritClient } from "../../src/sdk/client.js";
import { createWritVerifier, WritVerifyError } from "../../src/sdk/verify.js";
import type { RunningServer } from "../../src/server.js";
import { keyOf, S3_READ } from "../support/api.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit;
let server: RunningServer;

/** An s3 read for billing-api, approved at once and collected. */
async function token(): Promise<string> {
  const agent = createWritClient({ url: server.url, key: keyOf(t, "report-agent") });
  const created = await agent.request({ ...S3_READ, audience: "billing-api" });
  const credential = await agent.collectCredential(created.id);
  if (credential.type !== "jwt") throw new Error("expected a JWT");
  return credential.token;
}

beforeAll(async () => {
  t = await startTestWrit({
    rate_limits: { refusals_per_minute_per_resource_server: 1, refusal_burst: 1 },
  });
  // Resource servers check expiry on the real clock: writ's must agree.
  t.clock.advance((Date.now() - t.clock.now()) / 1000);
  server = await serveTestWrit(t);
});

afterAll(async () => {
  await server?.stop();
});

describe("the verifier when writ limits the resource server's refused tokens", () => {
  it("refuses the token as invalid, and never holds back a first use", async () => {
    const verifier = createWritVerifier({
      writUrl: server.url,
      audience: "billing-api",
      resourceServerKey: keyOf(t, "billing-api"),
    });
    const required = { action: "s3:GetObject", resource: S3_READ.resource };
    const used = await token();
    await expect(verifier.verify(used, required)).resolves.toBeDefined();
    await expect(verifier.verify(used, required)).rejects.toMatchObject({
      code: "token_replayed",
    });
    // The one refusal the limit allows is spent: writ answers 429, and the
    // verifier still refuses the token, as one that will never be accepted.
    const error = await verifier.verify(used, required).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritVerifyError);
    expect(error).toMatchObject({ code: "token_invalid", status: 401 });
    // A first use is never limited.
    await expect(verifier.verify(await token(), required)).resolves.toBeDefined();
  });
});
