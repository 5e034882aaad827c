import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyAuditLog } from "../../src/audit/verify-log.js";
import { devPrincipals, loadOrCreateDevIdentities } from "../../src/config/dev-identities.js";
import { parseConfig } from "../../src/config/load.js";
import { assembleWrit } from "../../src/config/wire.js";
import { silentLogger } from "../../src/ports/logger.js";
import { ManualClock, REPO_POLICIES } from "../support/harness.js";

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-repair-"));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function start() {
  const config = parseConfig({ data_dir: dataDir, policies: { dir: REPO_POLICIES, watch: false } });
  const { identities } = await loadOrCreateDevIdentities(dataDir);
  const writ = await assembleWrit(config, {
    clock: new ManualClock(),
    logger: silentLogger,
    extraPrincipals: devPrincipals(identities),
  });
  return {
    writ,
    agentKey: identities.agents[0]?.key ?? "",
    auditorKey: identities.auditors[0]?.key ?? "",
  };
}

describe("a torn write found at start", () => {
  it("is cut, and the cut is recorded in the stream and the log as audit.repaired", async () => {
    const first = await start();
    const created = await first.writ.app.request("/v1/requests", {
      method: "POST",
      headers: { authorization: `Bearer ${first.agentKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        action: "s3:GetObject",
        resource: "arn:aws:s3:::demo-reports/q3.csv",
        audience: "billing-api",
      }),
    });
    expect(created.status).toBe(201);
    await first.writ.close();
    const segment = join(dataDir, "audit", "audit-000001.jsonl");
    const torn = '{"seq":99,"time":"2026-01-15T09:0';
    await appendFile(segment, torn);

    const second = await start();
    const res = await second.writ.app.request("/v1/events?type=audit.repaired", {
      headers: { authorization: `Bearer ${second.auditorKey}` },
    });
    const body = (await res.json()) as { items: Record<string, unknown>[] };
    expect(body.items).toEqual([
      expect.objectContaining({
        type: "audit.repaired",
        request_id: "",
        actor: { kind: "system", id: "writ" },
        data: {
          log: ".",
          segment: "audit-000001.jsonl",
          dropped_bytes: torn.length,
          checkpoint_dropped_bytes: 0,
        },
      }),
    ]);
    await second.writ.close();

    const lines = (await readFile(segment, "utf8")).trimEnd().split("\n");
    const last = JSON.parse(lines.at(-1) as string) as { type: string; seq: number };
    expect(last).toMatchObject({ type: "audit.repaired", seq: lines.length });
    const key = second.writ.auditIntegrity.checkpointKey();
    const { parseCheckpointPublicKeys } = await import("../../src/audit/checkpoint-key.js");
    const keys = parseCheckpointPublicKeys(JSON.stringify(key.jwk), "test");
    expect(await verifyAuditLog({ dir: join(dataDir, "audit"), keys })).toMatchObject({
      ok: true,
      entries: lines.length,
    });
  });
});
