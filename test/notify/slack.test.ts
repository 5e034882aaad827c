import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  keyOf,
  readRequest,
} from "../support/api.js";
import {
  blockAction,
  denySubmission,
  ephemeralTo as ephemeral,
  type FakeSlack,
  interactionBody,
  type PostInteractionOptions,
  postInteraction,
  slackSignature,
  startFakeSlack,
} from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import {
  TEST_SLACK_CHANNEL as CHANNEL,
  TEST_SLACK_SIGNING_SECRET as SECRET,
  slackSettings,
  TEST_SLACK_BOT_TOKEN as TOKEN,
} from "../support/slack-app.js";

const BOB = "U0WRITBOB";
const CAROL = "U0WRITCAROL";
const ALICE = "U0WRITALICE";
const ERIN = "U0WRITERIN";

let slack: FakeSlack;
let t: TestWrit;

async function start(slackOverrides: Record<string, unknown> = {}, extra: object = {}) {
  const erinKey = generateKey("reviewer");
  t = await startTestWrit({
    slack: slackSettings(slack, slackOverrides),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    identities: {
      // A linked reviewer outside the groups the demo policy names.
      reviewers: [
        { id: "erin", key_sha256: hashKey(erinKey), groups: ["security"], slack_user_id: ERIN },
      ],
    },
    ...extra,
  });
  t.keys.erin = erinKey;
}

function post(payload: object | string, options: Partial<PostInteractionOptions> = {}) {
  return postInteraction(t.writ, t.clock.now(), payload, { secret: SECRET, ...options });
}

/** Creates the demo export and waits for its approval message in the channel. */
async function exportRequest(context?: Record<string, unknown>): Promise<{ id: string }> {
  const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, ...(context ? { context } : {}) });
  const posted = await slack.waitFor("chat.postMessage", (c) =>
    JSON.stringify(c.args).includes(id),
  );
  expect(posted.args.channel).toBe(CHANNEL);
  return { id };
}

const getRequest = (id: string) => readRequest(t, id);
const ephemeralTo = (user: string, contains: string) => ephemeral(slack, user, contains);

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
});

afterEach(async () => {
  await t?.close();
  await slack.close();
});

describe("Slack approvals", () => {
  it("posts a contextual message, takes two approvals from linked reviewers and updates it in place", async () => {
    await start();
    const { id } = await exportRequest({ classification: "pii", rows: 12000 });
    const posted = await slack.waitFor("chat.postMessage", (c) =>
      JSON.stringify(c.args).includes(id),
    );
    const text = JSON.stringify(posted.args.blocks);
    for (const expected of [
      "report-agent",
      "alice",
      "db:export",
      "db://prod/customers",
      "quarterly churn analysis",
      "customers-export",
      "0/2 from data-owners",
      "classification",
      "writ_approve",
      "writ_deny",
      "<!date^",
    ]) {
      expect(text, expected).toContain(expected);
    }

    expect(
      (await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }))).status,
    ).toBe(200);
    await ephemeralTo(BOB, "more approvals are needed");
    expect(
      (await post(blockAction({ user: CAROL, actionId: "writ_approve", requestId: id }))).status,
    ).toBe(200);
    await ephemeralTo(CAROL, "it is now approved");

    const request = await getRequest(id);
    expect(request.status).toBe("approved");
    expect(request.reviews.map((r) => r.reviewer)).toEqual(["bob", "carol"]);

    const update = await slack.waitFor("chat.update", (c) => {
      const blocks = JSON.stringify(c.args.blocks);
      return blocks.includes("Approved by bob, carol") && blocks.includes(`<@${CAROL}>`);
    });
    expect(JSON.stringify(update.args.blocks)).toContain(`<@${BOB}>`);
    expect(JSON.stringify(update.args.blocks)).not.toContain("writ_approve");
    // The owner hears about the decision.
    const dm = await slack.waitFor("chat.postMessage", (c) => c.args.channel === ALICE);
    expect(JSON.stringify(dm.args)).toContain("was approved by");

    const granted = await allEvents(t, { request_id: id, type: "approval.granted" });
    expect(granted.map((e) => [e.data.channel, e.data.channel_user_id])).toEqual([
      ["slack", BOB],
      ["slack", CAROL],
    ]);

    // Issuance and use show up on the same message.
    const token = await collectToken(t, id);
    await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("Credential issued"),
    );
    await t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
    await t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
    await slack.waitFor("chat.update", (c) => {
      const blocks = JSON.stringify(c.args.blocks);
      return (
        blocks.includes("Token used by billing-api") &&
        blocks.includes("Replay of the used token blocked")
      );
    });
  });

  it("denies through the modal, which requires a reason", async () => {
    await start();
    const { id } = await exportRequest();
    await post(blockAction({ user: BOB, actionId: "writ_deny", requestId: id, channel: CHANNEL }));
    const opened = await slack.waitFor("views.open");
    const view = opened.args.view as { callback_id: string; private_metadata: string };
    expect(view.callback_id).toBe("writ_deny_reason");
    expect(JSON.parse(view.private_metadata)).toEqual({ requestId: id, channelId: CHANNEL });
    // The click that only opens the form is on the record too, with the Slack user id.
    await expect
      .poll(async () =>
        (await allEvents(t, { request_id: id, type: "approval.form_opened" })).map((e) => [
          e.actor,
          e.data,
        ]),
      )
      .toEqual([
        [
          { kind: "reviewer", id: "bob" },
          { form: "deny", reviewer: "bob", channel: "slack", channel_user_id: BOB },
        ],
      ]);

    const empty = await post(denySubmission({ user: BOB, requestId: id, reason: "  \n " }));
    expect(await empty.json()).toEqual({
      response_action: "errors",
      errors: { reason: expect.stringContaining("reason") },
    });
    expect((await getRequest(id)).status).toBe("pending");

    const res = await post(
      denySubmission({ user: BOB, requestId: id, reason: "not\nthis quarter", channel: CHANNEL }),
    );
    expect(res.status).toBe(200);
    await ephemeralTo(BOB, "You denied");
    const request = await getRequest(id);
    expect(request.status).toBe("denied");
    const denied = await allEvents(t, { request_id: id, type: "approval.denied" });
    expect(denied[0]?.data).toMatchObject({
      reason: "not this quarter",
      channel: "slack",
      channel_user_id: BOB,
    });
    await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("Denied by bob"),
    );
    await slack.waitFor(
      "chat.postMessage",
      (c) => c.args.channel === ALICE && JSON.stringify(c.args).includes("denied"),
    );
  });

  it("lets a reviewer who approved open the deny form and deny while the request is pending", async () => {
    await start();
    const { id } = await exportRequest();
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(BOB, "You approved");
    await post(blockAction({ user: BOB, actionId: "writ_deny", requestId: id, channel: CHANNEL }));
    await slack.waitFor("views.open");
    await post(
      denySubmission({ user: BOB, requestId: id, reason: "saw the row count", channel: CHANNEL }),
    );
    await ephemeralTo(BOB, "You denied");
    expect((await getRequest(id)).status).toBe("denied");
    const [denied] = await allEvents(t, { request_id: id, type: "approval.denied" });
    expect(denied?.data).toMatchObject({ reviewer: "bob", after_approving: true });
  });

  it("refuses unknown users, non-members, the owner and second clicks, records each, changes nothing", async () => {
    await start();
    const { id } = await exportRequest();
    await post(blockAction({ user: "U0STRANGER", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0STRANGER", "not linked to a writ reviewer");
    await post(blockAction({ user: ERIN, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(ERIN, "not in a group");
    await post(blockAction({ user: ALICE, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(ALICE, "You own this agent");
    await post(blockAction({ user: ALICE, actionId: "writ_deny", requestId: id }));
    await ephemeralTo(ALICE, "You own this agent");
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(BOB, "You approved");
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(BOB, "already reviewed");

    const request = await getRequest(id);
    expect(request.status).toBe("pending");
    expect(request.reviews.map((r) => r.reviewer)).toEqual(["bob"]);
    expect(slack.accepted("views.open")).toHaveLength(0);
    const refused = await allEvents(t, { request_id: id, type: "approval.refused" });
    expect(refused.map((e) => [e.data.channel_user_id, e.data.code, e.data.attempted])).toEqual([
      ["U0STRANGER", "unknown_channel_user", "approve"],
      [ERIN, "not_an_approver", "approve"],
      [ALICE, "self_approval_forbidden", "approve"],
      [ALICE, "self_approval_forbidden", "deny"],
      [BOB, "already_reviewed", "approve"],
    ]);
    expect(refused[0]?.actor).toEqual({ kind: "system", id: "slack" });
    expect(refused[2]?.actor).toEqual({ kind: "reviewer", id: "alice" });
    // A refused Deny click opens no form, so it is recorded as refused only.
    expect(await allEvents(t, { request_id: id, type: "approval.form_opened" })).toEqual([]);
  });

  it("rejects bad signatures, stale timestamps and replays; Slack's own retries change nothing", async () => {
    await start();
    const { id } = await exportRequest();
    const click = interactionBody(
      blockAction({ user: BOB, actionId: "writ_approve", requestId: id }),
    );
    const now = Math.floor(t.clock.now() / 1000);

    expect((await post(click, { secret: "0".repeat(32) })).status).toBe(401);
    expect((await post(click, { at: now - 301 })).status).toBe(401);
    expect((await post(click, { at: now + 301 })).status).toBe(401);
    const unsigned = await t.writ.app.request("/slack/events", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: click,
    });
    expect(unsigned.status).toBe(401);
    const tampered = await t.writ.app.request("/slack/events", {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        ...slackSignature(SECRET, click, now),
      },
      body: click.replace(BOB, CAROL),
    });
    expect(tampered.status).toBe(401);
    expect((await getRequest(id)).reviews).toHaveLength(0);

    const headers = slackSignature(SECRET, click, now);
    const first = await t.writ.app.request("/slack/events", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: click,
    });
    expect(first.status).toBe(200);
    await ephemeralTo(BOB, "You approved");
    const replay = await t.writ.app.request("/slack/events", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: click,
    });
    expect(replay.status).toBe(401);
    // Slack retries with the same body, a fresh signature and X-Slack-Retry-Num.
    t.clock.advance(60);
    const retry = await post(click, {
      headers: { "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout" },
    });
    expect(retry.status).toBe(200);

    const ephemerals = slack.accepted("chat.postEphemeral").filter((c) => c.args.user === BOB);
    expect(ephemerals).toHaveLength(1);
    expect((await getRequest(id)).reviews).toHaveLength(1);
    expect(await allEvents(t, { request_id: id, type: "approval.refused" })).toHaveLength(0);
  });

  it("answers url_verification and refuses malformed, oversized and foreign payloads", async () => {
    await start();
    const { id } = await exportRequest();
    const challenge = JSON.stringify({
      type: "url_verification",
      token: "x",
      challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    });
    const verified = await post(challenge, { type: "application/json" });
    expect(await verified.json()).toEqual({
      challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    });

    expect((await post("payload=%7Bnot-json", {})).status).toBe(400);
    expect((await post("payload=%5B1%2C2%5D", {})).status).toBe(400);
    expect((await post("command=%2Fwrit&text=approve", {})).status).toBe(400);
    expect((await post(interactionBody({ type: "shortcut", user: { id: BOB } }))).status).toBe(400);
    expect((await post("hello", { type: "text/plain" })).status).toBe(415);
    const deep = `payload=${encodeURIComponent(`${"[".repeat(100)}${"]".repeat(100)}`)}`;
    expect((await post(deep)).status).toBe(400);
    const big = `payload=${"a".repeat(300 * 1024)}`;
    expect((await post(big)).status).toBe(413);
    expect((await post("ssl_check=1&token=x")).status).toBe(200);

    // Well signed but hostile: a forged request id, another workspace, an unknown action.
    await post(
      blockAction({ user: BOB, actionId: "writ_approve", requestId: "req_AAAAAAAAAAAAAAAAAAAAAA" }),
    );
    await ephemeralTo(BOB, "no longer exists");
    const foreign = await post(
      blockAction({ user: BOB, actionId: "writ_approve", requestId: id, team: "T0OTHER" }),
    );
    expect(foreign.status).toBe(200);
    const bad = await post(
      blockAction({ user: BOB, actionId: "writ_approve", requestId: "../../etc/passwd" }),
    );
    expect(bad.status).toBe(200);
    expect((await getRequest(id)).reviews).toHaveLength(0);
    expect(slack.accepted("chat.postEphemeral")).toHaveLength(1);
  });

  it("reveals masked fields only to eligible approvers, recording the reveal first", async () => {
    await start();
    const { id } = await exportRequest({ customer_email: "jane@example.com", rows: 10 });
    const posted = await slack.waitFor("chat.postMessage", (c) =>
      JSON.stringify(c.args).includes(id),
    );
    expect(JSON.stringify(posted.args)).not.toContain("jane@example.com");
    expect(JSON.stringify(posted.args.blocks)).toContain("writ_reveal");

    await post(blockAction({ user: ALICE, actionId: "writ_reveal", requestId: id }));
    await ephemeralTo(ALICE, "You own this agent");
    await post(blockAction({ user: "U0STRANGER", actionId: "writ_reveal", requestId: id }));
    await ephemeralTo("U0STRANGER", "not linked");
    await post(blockAction({ user: BOB, actionId: "writ_reveal", requestId: id }));
    const shown = await ephemeralTo(BOB, "jane@example.com");
    expect(JSON.stringify(shown.args)).toContain("your reveal is recorded");

    const revealed = await allEvents(t, { request_id: id, type: "sensitive.revealed" });
    expect(revealed).toHaveLength(1);
    expect(revealed[0]?.data).toMatchObject({
      reviewer: "bob",
      fields: ["customer_email"],
      channel_user_id: BOB,
    });
    expect(JSON.stringify(revealed)).not.toContain("jane@example.com");
    await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("bob revealed the masked fields"),
    );
    const everything = JSON.stringify(slack.calls.filter((c) => c.method !== "chat.postEphemeral"));
    expect(everything).not.toContain("jane@example.com");
  });

  it("keeps requests working while Slack fails, and delivers once Slack recovers", async () => {
    await start();
    slack.failNext("chat.postMessage", 2, { ratelimited: 30 });
    slack.failNext("chat.postMessage", 1, { status: 503 });
    slack.failNext("chat.postMessage", 1, { error: "service_unavailable" });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    // Reviewers use the API meanwhile: nothing waits on Slack.
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    await collectToken(t, id);
    const posted = await slack.waitFor("chat.postMessage", (c) =>
      JSON.stringify(c.args).includes(id),
    );
    expect(JSON.stringify(posted.args.blocks)).toContain(id);
    expect(slack.calls.map((c) => c.outcome).slice(0, 4)).toEqual([
      "ratelimited",
      "ratelimited",
      "http_503",
      "service_unavailable",
    ]);
    // The later events follow, in order, onto the same message.
    await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("Credential issued"),
    );
  });

  it("DMs the approvers of a group routed to DMs, never the owner, and updates every copy", async () => {
    await start({ channel: undefined, routing: { "data-owners": { dm: true } } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === CAROL);
    const dms = slack.accepted("chat.postMessage").map((c) => c.args.channel);
    expect(dms.sort()).toEqual([BOB, CAROL]);
    await post(
      blockAction({ user: BOB, actionId: "writ_approve", requestId: id, channel: "D0WRITBOB" }),
    );
    await slack.waitFor("chat.update", (c) => c.args.channel === "D0WRITCAROL");
    await slack.waitFor("chat.update", (c) => c.args.channel === "D0WRITBOB");
  });

  /** Email matching on, and frank a reviewer known to writ by `email` and to Slack as U0FRANK. */
  async function startWithFrankByEmail(email: string) {
    await start(
      { match_by_email: true },
      {
        identities: {
          reviewers: [
            {
              id: "frank",
              key_sha256: hashKey(generateKey("reviewer")),
              groups: ["data-owners"],
              email,
            },
          ],
        },
      },
    );
    slack.users.set("U0FRANK", {
      id: "U0FRANK",
      team_id: "T0WRIT",
      is_email_confirmed: true,
      profile: { email: "frank@example.com" },
    });
  }

  it("matches by confirmed email only when turned on", async () => {
    await startWithFrankByEmail("Frank@example.com");
    slack.users.set("U0FAKEFRANK", {
      id: "U0FAKEFRANK",
      team_id: "T0WRIT",
      is_email_confirmed: false,
      profile: { email: "frank@example.com" },
    });
    const { id } = await exportRequest();
    await post(blockAction({ user: "U0FAKEFRANK", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0FAKEFRANK", "not linked");
    await post(blockAction({ user: "U0FRANK", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0FRANK", "You approved");
    expect((await getRequest(id)).reviews.map((r) => r.reviewer)).toEqual(["frank"]);
    expect(slack.accepted("users.info").map((c) => c.args.user)).toEqual([
      "U0FAKEFRANK",
      "U0FRANK",
    ]);
  });

  it("does not take a failed email lookup for an unknown user: nothing is refused or recorded, and a later click counts", async () => {
    await startWithFrankByEmail("frank@example.com");
    const { id } = await exportRequest();
    slack.failNext("users.info", 1, { ratelimited: 30 });
    slack.failNext("users.info", 1, { error: "token_revoked" });
    for (const expected of ["ratelimited", "token_revoked"]) {
      await post(blockAction({ user: "U0FRANK", actionId: "writ_approve", requestId: id }));
      await expect
        .poll(() => slack.calls.filter((c) => c.method === "users.info").map((c) => c.outcome))
        .toContain(expected);
    }
    await expect
      .poll(() => slack.accepted("chat.postEphemeral").filter((c) => c.args.user === "U0FRANK"))
      .toHaveLength(2);
    for (const reply of slack.accepted("chat.postEphemeral")) {
      expect(JSON.stringify(reply.args)).toContain("could not look up your Slack account");
      expect(JSON.stringify(reply.args)).not.toContain("not linked");
    }
    expect(await allEvents(t, { request_id: id, type: "approval.refused" })).toEqual([]);
    expect((await getRequest(id)).reviews).toEqual([]);

    // Slack answers again: the same account is the reviewer it always was.
    await post(blockAction({ user: "U0FRANK", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0FRANK", "You approved");
    expect((await getRequest(id)).reviews.map((r) => r.reviewer)).toEqual(["frank"]);
  });
});
