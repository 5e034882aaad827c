import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConsoleClient } from "../console/console-client.js";
import { allEvents, approveAs, CUSTOMERS_EXPORT, createRequest, keyOf } from "../support/api.js";
import { type FakeSlack, type SlackCall, startFakeSlack } from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

const TOKEN = "xoxb-1111-2222-writtesttoken";
const CHANNEL = "C0APPROVALS";
const ALICE = "U0WRITALICE";

let slack: FakeSlack;
let t: TestWrit;

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
  t = await startTestWrit({
    slack: {
      signing_secret: "8f742231b10e8888abcd99e7c5a7e58d",
      bot_token: TOKEN,
      api_url: slack.apiUrl,
      channel: CHANNEL,
    },
    notifications: {
      retry: { initial_ms: 2, max_ms: 40 },
      ticket_url: "https://jira.example.com/browse/{ticket}",
    },
  });
});

afterEach(async () => {
  await t.close();
  await slack.close();
});

const about = (id: string) => (c: SlackCall) => JSON.stringify(c.args).includes(id);
const blocksOf = (c: SlackCall) => JSON.stringify(c.args.blocks);

describe("the Slack message over a request's life", () => {
  it("records notification.sent once, links the ticket, and the console timeline shows the notified step", async () => {
    const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, ticket: "DATA-12" });
    const posted = await slack.waitFor("chat.postMessage", about(id));
    expect(blocksOf(posted)).toContain(
      JSON.stringify("*Ticket*\n<https://jira.example.com/browse/DATA-12|DATA-12>").slice(1, -1),
    );

    await expect
      .poll(async () => allEvents(t, { request_id: id, type: "notification.sent" }))
      .toHaveLength(1);
    const [sent] = await allEvents(t, { request_id: id, type: "notification.sent" });
    expect(sent?.actor).toEqual({ kind: "system", id: "writ" });
    expect(sent?.data).toEqual({ channel: "slack", target: "channel", destinations: 1 });

    // Later events update the message; the record of notifying prompts nothing itself.
    await approveAs(t, "bob", id);
    await slack.waitFor("chat.update", (c) => blocksOf(c).includes("1/2 from data-owners"));
    expect(slack.accepted("chat.update")).toHaveLength(1);
    expect(slack.accepted("chat.postMessage").filter(about(id))).toHaveLength(1);
    expect(await allEvents(t, { request_id: id, type: "notification.sent" })).toHaveLength(1);

    const dana = new ConsoleClient(t);
    expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
    const html = await (await dana.get(`/console/requests/${id}`)).text();
    let at = 0;
    for (const step of [
      "Requested",
      "Decided by policy: approve",
      "Notified reviewers via slack",
      "channel",
      "Approved by bob",
    ]) {
      const next = html.indexOf(step, at);
      expect(next, step).toBeGreaterThan(-1);
      at = next;
    }
  });

  it("heads a request revoked before collection as such, with no deadline left", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", about(id));
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    await slack.waitFor("chat.update", (c) => blocksOf(c).includes("*Collect by*"));
    const revoked = await t.call("POST", `/v1/requests/${id}/revoke`, {
      key: keyOf(t, "dana"),
      body: { reason: "agent under review" },
    });
    expect(revoked.status).toBe(200);
    const update = await slack.waitFor("chat.update", (c) =>
      blocksOf(c).includes("before the credential was collected"),
    );
    const blocks = blocksOf(update);
    expect(blocks).toContain(":no_entry: Revoked before collection: db:export");
    expect(blocks).toContain("Revoked by dana before the credential was collected");
    expect(blocks).not.toContain("Credential revoked");
    expect(blocks).not.toContain("*Collect by*");
    expect(blocks).not.toContain("Stage ends");
    expect(String(update.args.text)).toMatch(/^Revoked before collection: /);
  });

  it("shows the expiry in place once the deadline passes, and tells the owner", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", about(id));
    // The policy gives approvers 900 s; the background sweep notices the deadline.
    t.clock.advance(901);
    expect(await t.writ.broker.expireDue()).toBeGreaterThanOrEqual(1);
    const update = await slack.waitFor("chat.update", (c) =>
      blocksOf(c).includes("Expired before enough approvals"),
    );
    // In place: the message Slack holds at that channel and ts now reads "Expired".
    expect(update.args.channel).toBe(CHANNEL);
    const held = slack.message(CHANNEL, String(update.args.ts));
    expect(JSON.stringify(held?.blocks)).toContain("Expired before enough approvals");
    const blocks = blocksOf(update);
    expect(blocks).toContain(":hourglass: Expired: db:export");
    expect(blocks).not.toContain("writ_approve");
    expect(blocks).not.toContain("writ_deny");
    // The deadline that passed is no longer shown as one.
    expect(blocks).not.toContain("*Approve by*");
    expect(blocks).not.toContain("Stage ends");
    await slack.waitFor(
      "chat.postMessage",
      (c) => c.args.channel === ALICE && JSON.stringify(c.args).includes("expired"),
    );
  });
});
