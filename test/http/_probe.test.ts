import { it } from "vitest";
import { startTestWrit } from "../support/harness.js";
it("probe", async () => {
  const t = await startTestWrit();
  const agent = t.keys["report-agent"];
  for (const n of [100, 500, 1000, 2000, 3000, 5000, 10000]) {
    const r = await t.call("POST", "/v1/requests", { key: agent, body: `{"action":"s3:GetObject","resource":"arn:aws:s3:::demo-reports/a","audience":"billing-api","context":{"a":${"[".repeat(n)}${"]".repeat(n)}}}` });
    const r2 = await t.call("POST", "/v1/requests", { key: agent, body: `{"action":"s3:GetObject","resource":"arn:aws:s3:::demo-reports/a","audience":"billing-api","context":{"a":${'{"a":'.repeat(n)}1${"}".repeat(n)}}}` });
    console.log(n, r.status, r2.status);
  }
  await t.close();
});
