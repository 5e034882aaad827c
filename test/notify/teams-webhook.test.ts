import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { allEvents, approveAs, CUSTOMERS_EXPORT, createRequest, S3_READ } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RecordingServer, startRecordingServer } from "../support/recording-server.js";

const HOOK_SECRET = "3b1f6c0e8d7a4f2e9c5b1a0d7e6f4c3b2a1908f7e6d5c4b3a29180706f5e4d3c";

/** The receiver side, as docs/webhooks.md tells integrators to write it. */
function verifyWebhook(secret: string, header: string, body: string, nowSeconds: number): boolean {
  const parts = Object.fromEntries(
    header.split(",").map((p) => p.split("=", 2) as [string, string]),
  );
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > 300 || parts.v1 === undefined)
    return false;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

let receiver: RecordingServer;
let t: TestWrit;
let dir: string;

beforeEach(async () => {
  receiver = await startRecordingServer();
  dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
  await writeFile(join(dir, "secret"), `${HOOK_SECRET}\n`, { mode: 0o600 });
  t = await startTestWrit({
    teams: {
      webhook_url: `${receiver.url}/teams`,
      console_url: "https://writ.example.com/console/",
    },
    webhooks: [
      { url: `${receiver.url}/all`, secret_file: join(dir, "secret") },
      {
        url: `${receiver.url}/decisions`,
        secret_file: join(dir, "secret"),
        events: ["request.approved", "request.denied"],
      },
    ],
    notifications: {
      retry: { initial_ms: 2, max_ms: 40 },
      ticket_url: "https://jira.example.com/browse/{ticket}",
    },
  });
});

afterEach(async () => {
  await t.close();
  await receiver.close();
  await rm(dir, { recursive: true, force: true });
});

describe("Teams", () => {
  it("posts an Adaptive Card with the context and a link to the console's approval page", async () => {
    const { id } = await createRequest(t, {
      ...CUSTOMERS_EXPORT,
      ticket: "DATA-12",
      reason: "export [click](https://evil.example) *now*",
      context: { customer_email: "jane@example.com", classification: "pii" },
    });
    const posted = await receiver.waitFor((r) => r.path === "/teams");
    expect(posted.headers["content-type"]).toBe("application/json");
    const message = JSON.parse(posted.body);
    expect(message.type).toBe("message");
    const attachment = message.attachments[0];
    expect(attachment.contentType).toBe("application/vnd.microsoft.card.adaptive");
    const card = attachment.content;
    expect(card.type).toBe("AdaptiveCard");
    expect(card.actions[0]).toEqual({
      type: "Action.OpenUrl",
      title: "Review in writ",
      url: `https://writ.example.com/console/requests/${id}`,
    });
    expect(card.actions[1].url).toBe("https://jira.example.com/browse/DATA-12");
    const text = JSON.stringify(card.body);
    for (const expected of [
      "report-agent",
      "db:export",
      "customers-export",
      "0/2 from data-owners",
      "classification",
    ]) {
      expect(text).toContain(expected);
    }
    expect(text).not.toContain("jane@example.com");
    // Agent text cannot become a link or formatting.
    expect(text).toContain("\\\\[click\\\\]\\\\(https://evil.example\\\\) \\\\*now\\\\*");

    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    const outcome = await receiver.waitFor(
      (r) => r.path === "/teams" && r.body.includes("Approved"),
    );
    expect(outcome.body).toContain("Approved by bob");
    // Nothing for requests that need no approval.
    await createRequest(t, S3_READ);
    await receiver.waitFor((r) => r.path === "/all" && r.body.includes("s3:GetObject"));
    expect(receiver.requests.filter((r) => r.path === "/teams")).toHaveLength(2);
  });
});

describe("context that does not fit", () => {
  it("is counted on the Teams card and in the webhook payload, never dropped unsaid", async () => {
    // Ten fields fill the card; the agent put what matters last.
    const context: Record<string, string> = {};
    for (let i = 1; i <= 10; i++) context[`field_${i}`] = "routine";
    context.destination = "s3://attacker-bucket";
    context.customer_email = "jane@example.com";
    const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, context });
    const posted = await receiver.waitFor((r) => r.path === "/teams");
    const body = JSON.parse(posted.body).attachments[0].content.body as {
      type: string;
      text?: string;
      facts?: { title: string; value: string }[];
    }[];
    const contextAt = body.findIndex((b) => b.type === "TextBlock" && b.text === "Context");
    expect(body[contextAt + 1]?.facts).toHaveLength(10);
    expect(body[contextAt + 2]).toMatchObject({
      type: "TextBlock",
      text: "…and 2 more fields, shown in writ",
    });
    expect(posted.body).not.toContain("attacker-bucket");
    expect(posted.body).not.toContain("jane@example.com");

    const created = await receiver.waitFor(
      (r) => r.path === "/all" && r.body.includes('"request.created"') && r.body.includes(id),
    );
    const request = JSON.parse(created.body).request;
    expect(Object.keys(request.context)).toHaveLength(10);
    expect(request.context_omitted).toBe(2);
    expect(request.masked_fields).toEqual(["customer_email"]);
    expect(created.body).not.toContain("jane@example.com");
  });
});

describe("signed webhooks", () => {
  it("POSTs every event, signed, in order, retrying until the receiver takes it", async () => {
    receiver.answerNext("/all", 503, 429, 500);
    const { id } = await createRequest(t, {
      ...CUSTOMERS_EXPORT,
      context: { customer_email: "jane@example.com" },
    });
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    const approved = await receiver.waitFor(
      (r) => r.path === "/all" && r.body.includes('"request.approved"'),
    );
    const delivered = receiver.requests.filter((r) => r.path === "/all" && r.status === 200);
    const types = delivered.map((r) => JSON.parse(r.body).type);
    // notification.sent (the channels' own records) interleaves as the workers run.
    expect(types.filter((type) => type !== "notification.sent")).toEqual([
      "request.created",
      "request.decided",
      "approval.granted",
      "approval.granted",
      "request.approved",
    ]);
    expect(
      receiver.requests
        .filter((r) => r.path === "/all")
        .map((r) => r.status)
        .slice(0, 4),
    ).toEqual([503, 429, 500, 200]);
    const now = Math.floor(t.clock.now() / 1000);
    for (const r of delivered) {
      const header = String(r.headers["x-writ-signature"]);
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verifyWebhook(HOOK_SECRET, header, r.body, now)).toBe(true);
      expect(verifyWebhook("another-secret-another-secret-xx", header, r.body, now)).toBe(false);
      expect(verifyWebhook(HOOK_SECRET, header, `${r.body} `, now)).toBe(false);
      expect(verifyWebhook(HOOK_SECRET, header, r.body, now + 301)).toBe(false);
      expect(r.headers["x-writ-event-id"]).toBe(JSON.parse(r.body).id);
    }
    const body = JSON.parse(approved.body);
    expect(body).toMatchObject({
      type: "request.approved",
      request_id: id,
      actor: { kind: "system", id: "writ" },
      data: { by: "reviewers", approvers: ["bob", "carol"] },
      request: { agent: "report-agent", action: "db:export", masked_fields: ["customer_email"] },
    });
    expect(body.request.context.customer_email).toBe("•••");
    expect(JSON.stringify(delivered)).not.toContain("jane@example.com");

    const decisions = await receiver.waitFor((r) => r.path === "/decisions");
    expect(JSON.parse(decisions.body).type).toBe("request.approved");
    expect(receiver.requests.filter((r) => r.path === "/decisions")).toHaveLength(1);
  });

  it("records notification.sent for Teams and for a webhook that took the prompt, and forwards it", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const recorded = async () =>
      (await allEvents(t, { request_id: id, type: "notification.sent" })).map((e) => e.data);
    await expect.poll(recorded).toEqual(
      expect.arrayContaining([
        { channel: "teams", target: "channel", destinations: 1 },
        {
          channel: "webhook",
          target: "endpoint",
          destinations: 1,
          webhook: expect.stringMatching(/^[0-9a-f]{16}$/),
        },
      ]),
    );
    // Once each: the webhook filtered to decisions never took the prompt.
    expect(await recorded()).toHaveLength(2);
    // A webhook for every event forwards these records too; the other does not.
    const forwarded = await receiver.waitFor(
      (r) => r.path === "/all" && r.status === 200 && r.body.includes('"notification.sent"'),
    );
    expect(JSON.parse(forwarded.body)).toMatchObject({ request_id: id, type: "notification.sent" });
    expect(JSON.stringify(await allEvents(t, { request_id: id }))).not.toContain(receiver.url);
    expect(
      receiver.requests.filter((r) => r.path === "/decisions" && r.body.includes("notification")),
    ).toEqual([]);
  });
});
