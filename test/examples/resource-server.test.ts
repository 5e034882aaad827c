import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createResourceServer } from "../../examples/resource-server/server.js";
import { createWritClient } from "../../src/sdk/client.js";
import type { RunningServer } from "../../src/server.js";
import { CUSTOMERS_EXPORT, keyOf } from "../support/api.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

// The example imports `writ/verify` by package name, as a user's server would;
// it resolves to the built package (dist/), which `npm test` builds first.

let t: TestWrit;
let server: RunningServer;

beforeAll(async () => {
  t = await startTestWrit();
  t.clock.advance((Date.now() - t.clock.now()) / 1000);
  server = await serveTestWrit(t);
});

afterAll(async () => {
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
});

describe("examples/resource-server", () => {
  it("serves an approved export once, then answers the replay 401 token_replayed", async () => {
    const app = createResourceServer({
      writUrl: server.url,
      resourceServerKey: keyOf(t, "billing-api"),
      audience: "billing-api",
    });
    const agent = createWritClient({ url: server.url, key: keyOf(t, "report-agent") });
    const created = await agent.request(CUSTOMERS_EXPORT);
    for (const reviewer of ["bob", "carol"]) {
      await createWritClient({ url: server.url, key: keyOf(t, reviewer) }).approve(created.id);
    }
    const credential = await agent.collectCredential(created.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    const call = (path: string, method = "GET") =>
      app.request(path, { method, headers: { authorization: `Bearer ${credential.token}` } });

    // The token is for the export, not for a report: refused, and not used up.
    expect((await call("/reports/q3.csv")).status).toBe(403);
    const first = await call("/exports/customers", "POST");
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ export: "started", request: created.id });
    const replay = await call("/exports/customers", "POST");
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ error: { code: "token_replayed" } });
    await agent.complete(created.id);
  });
});
