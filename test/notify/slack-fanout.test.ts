import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import type { NotificationState } from "../../src/ports/notification-state.js";
import { allEvents, approveAs, CUSTOMERS_EXPORT, createRequest } from "../support/api.js";
import { capturingLogger } from "../support/captured-log.js";
import { type FakeSlack, type SlackCall, startFakeSlack } from "../support/fake-slack.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import {
  TEST_SLACK_SIGNING_SECRET as SECRET,
  TEST_SLACK_TEAM as TEAM,
  TEST_SLACK_BOT_TOKEN as TOKEN,
} from "../support/slack-app.js";

const ALICE = "U0WRITALICE";
const BOB = "U0WRITBOB";
const CAROL = "U0WRITCAROL";

let slack: FakeSlack;
let t: TestWrit | undefined;
let clock: ManualClock;
let state: NotificationState;
const { logger, lines: logs } = capturingLogger();

/** data-owners (alice, the export agent's owner, left out; bob; carol) get DMs. */
async function start() {
  t = await startTestWrit(
    {
      slack: {
        signing_secret: SECRET,
        bot_token: TOKEN,
        api_url: slack.apiUrl,
        team_id: TEAM,
        routing: { "data-owners": { dm: true } },
      },
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    },
    { clock, notificationState: state, logger },
  );
  return t;
}

/** Creates the demo export and waits for its one `notification.sent`, which it returns. */
async function exportNotified(t: TestWrit) {
  const { id } = await createRequest(t, CUSTOMERS_EXPORT);
  await expect
    .poll(() => allEvents(t, { request_id: id, type: "notification.sent" }))
    .toHaveLength(1);
  const [sent] = await allEvents(t, { request_id: id, type: "notification.sent" });
  return { id, sent };
}

const posts = () =>
  slack.calls
    .filter((c) => c.method === "chat.postMessage")
    .map((c) => `${String(c.args.channel)}: ${c.outcome}`);
const updatesOf = (channel: string) =>
  slack.calls.filter((c: SlackCall) => c.method === "chat.update" && c.args.channel === channel);

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
  clock = new ManualClock();
  state = createMemoryNotificationState({ clock });
  logs.length = 0;
});

afterEach(async () => {
  await t?.close();
  t = undefined;
  await slack.close();
});

describe("Slack approval DMs to each member of a group", () => {
  it("skips a member whose DM Slack refuses for good, asks the others, and counts who was reached", async () => {
    const t = await start();
    // bob's DM is refused for good (a deactivated account, a mistyped
    // slack_user_id); then carol's fails once in a way worth retrying.
    slack.failNext("chat.postMessage", 1, { error: "channel_not_found" });
    slack.failNext("chat.postMessage", 1, { status: 503 });
    const { id, sent } = await exportNotified(t);
    expect(sent?.data).toEqual({ channel: "slack", target: "dm", destinations: 1 });
    // bob is tried once and remembered: the retry for carol does not ask him again.
    expect(posts()).toEqual([`${BOB}: channel_not_found`, `${CAROL}: http_503`, `${CAROL}: ok`]);
    expect((await state.facts("slack", id))[`dead:u:${BOB}`]).toContain("channel_not_found");
    const skipped = logs.find((l) => l.message.includes("refused a destination for good"));
    expect(skipped?.fields).toMatchObject({ request_id: id, destination: `u:${BOB}` });
    expect(JSON.stringify(logs)).not.toContain(TOKEN);

    // Later events update carol's copy; bob has none, and nothing is posted to him.
    await approveAs(t, "bob", id);
    await slack.waitFor("chat.update", (c) => c.args.channel === "D0WRITCAROL");
    expect(posts().filter((p) => p.startsWith(BOB))).toHaveLength(1);
  });

  it("posts to the members not reached yet when it retries, never twice to the same one", async () => {
    const t = await start();
    slack.failNext("chat.postMessage", 1, { status: 503 });
    const { sent } = await exportNotified(t);
    expect(sent?.data).toEqual({ channel: "slack", target: "dm", destinations: 2 });
    // carol is asked while bob's DM waits for its retry.
    expect(posts()).toEqual([`${BOB}: http_503`, `${CAROL}: ok`, `${BOB}: ok`]);
  });
});

describe("Slack updates of a request's copies", () => {
  it("skips a copy that can no longer be updated: the others are updated and the owner gets the decision DM", async () => {
    const t = await start();
    const { id } = await exportNotified(t);
    // bob's copy is gone (deleted by an admin, or bob's account deactivated):
    // Slack answers message_not_found to every update of it.
    await state.saveFacts("slack", id, {
      [`msg:u:${BOB}`]: JSON.stringify({ channel: "D0WRITBOB", ts: "1768467600.999999" }),
    });

    await approveAs(t, "bob", id);
    await slack.waitFor("chat.update", (c) => c.args.channel === "D0WRITCAROL");
    await approveAs(t, "carol", id);

    // The owner, alice, is told of the decision (docs/slack.md).
    const ownerDm = await slack.waitFor("chat.postMessage", (c) => c.args.channel === ALICE);
    expect(JSON.stringify(ownerDm.args)).toContain(id);
    await slack.waitFor("chat.update", (c) => JSON.stringify(c.args.blocks).includes("Approved"));
    // bob's copy was tried once, then skipped for the later events.
    expect(updatesOf("D0WRITBOB").map((c) => c.outcome)).toEqual(["message_not_found"]);
    expect(updatesOf("D0WRITCAROL").every((c) => c.outcome === "ok")).toBe(true);
    expect(updatesOf("D0WRITCAROL").length).toBeGreaterThanOrEqual(2);
    expect((await state.facts("slack", id))[`dead:u:${BOB}`]).toContain("message_not_found");
    expect(logs.some((l) => l.message.includes("dropped"))).toBe(false);
  });
});
