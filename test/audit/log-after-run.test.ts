import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

interface Line {
  seq: number;
  type: string;
  request_id: string;
  event_id: string;
  time: string;
  actor: { kind: string; id: string };
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

describe("the audit log after a full run", () => {
  let t: TestWrit;
  let logPath: string;

  beforeEach(async () => {
    t = await startTestWrit();
    const files = await readdir(join(t.dataDir, "audit"));
    expect(files).toContain("audit-000001.jsonl");
    logPath = join(t.dataDir, "audit", "audit-000001.jsonl");

    // Every kind of outcome: allowed, approved by quorum, denied by a reviewer and by
    // policy, cancelled, expired, consumed and replayed.
    const agent = keyOf(t, "report-agent");
    const s3 = await createRequest(t, S3_READ);
    const token = await collectToken(t, s3.id);
    const consume = () =>
      t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
    expect((await consume()).status).toBe(200);
    expect((await consume()).status).toBe(409);

    const exported = await createRequest(t, CUSTOMERS_EXPORT);
    await approveAs(t, "bob", exported.id);
    await approveAs(t, "carol", exported.id);
    await collectToken(t, exported.id);

    const refused = await createRequest(t, CUSTOMERS_EXPORT);
    const denied = await t.call("POST", `/v1/requests/${refused.id}/deny`, {
      key: keyOf(t, "bob"),
      body: { reason: "not needed" },
    });
    expect(denied.status).toBe(200);
    const forbidden = await t.call("POST", "/v1/requests", {
      key: agent,
      body: { action: "iam:AttachRolePolicy", resource: "arn:aws:iam::1:role/x", audience: "a" },
    });
    expect(forbidden.status).toBe(403);

    const withdrawn = await createRequest(t, S3_READ);
    expect(
      (await t.call("POST", `/v1/requests/${withdrawn.id}/cancel`, { key: agent })).status,
    ).toBe(200);
    const forgotten = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(901);
    expect((await t.call("GET", `/v1/requests/${forgotten.id}`, { key: agent })).status).toBe(200);
  });
  afterEach(async () => {
    await t.close();
  });

  async function lines(): Promise<Line[]> {
    const text = await readFile(logPath, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    return text
      .slice(0, -1)
      .split("\n")
      .map((line) => JSON.parse(line) as Line);
  }

  it("verifies, with one entry per recorded event, in stream order", async () => {
    const result = await verifyLogFile(logPath);
    const events = await allEvents(t);
    expect(result).toMatchObject({ ok: true, entries: events.length, lastSeq: events.length });

    const entries = await lines();
    expect(entries.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(entries.map((e) => [e.event_id, e.type, e.request_id])).toEqual(
      events.map((e) => [e.id, e.type, e.request_id]),
    );
    for (const [i, entry] of entries.entries()) {
      const event = events[i];
      expect({ time: entry.time, actor: entry.actor, data: entry.data }).toEqual({
        time: event?.time,
        actor: event?.actor,
        data: event?.data,
      });
    }
    expect(new Set(events.map((e) => e.type))).toEqual(
      new Set([
        "request.created",
        "request.decided",
        "request.approved",
        "request.denied",
        "request.cancelled",
        "request.expired",
        "approval.granted",
        "approval.denied",
        "credential.issued",
        "token.used",
        "token.replay_blocked",
      ]),
    );
    // No secret reaches the log: neither keys nor the tokens handed out.
    const text = await readFile(logPath, "utf8");
    for (const key of Object.values(t.keys)) expect(text).not.toContain(key);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
  });

  it("fails verification at the seq of an edited line", async () => {
    const original = await readFile(logPath, "utf8");
    const raw = original.slice(0, -1).split("\n");
    const target = (await lines()).findIndex((e) => e.type === "credential.issued");
    expect(target).toBeGreaterThan(0);
    const entry = JSON.parse(raw[target] as string) as Line;
    entry.data = { ...entry.data, action: "s3:DeleteObject" };
    raw[target] = JSON.stringify(entry);
    const edited = join(t.dataDir, "edited.jsonl");
    await writeFile(edited, `${raw.join("\n")}\n`);

    const result = await verifyLogFile(edited);
    expect(result).toMatchObject({
      ok: false,
      firstBadSeq: entry.seq,
      line: target + 1,
      entries: target,
      reason: "hash mismatch",
    });
    // The log itself is untouched and still verifies.
    expect((await verifyLogFile(logPath)).ok).toBe(true);
  });

  it("fails verification where a line was deleted, or the tail dropped its newline", async () => {
    const raw = (await readFile(logPath, "utf8")).slice(0, -1).split("\n");
    const dropped = join(t.dataDir, "dropped.jsonl");
    await writeFile(dropped, `${[...raw.slice(0, 3), ...raw.slice(4)].join("\n")}\n`);
    expect(await verifyLogFile(dropped)).toMatchObject({ ok: false, firstBadSeq: 4 });

    const torn = join(t.dataDir, "torn.jsonl");
    await writeFile(torn, raw.join("\n"));
    expect(await verifyLogFile(torn)).toMatchObject({ ok: false, firstBadSeq: raw.length });
  });
});
