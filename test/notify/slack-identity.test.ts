import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { allEvents, CUSTOMERS_EXPORT, createRequest, keyOf, readRequest } from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import {
  blockAction,
  denySubmission,
  ephemeralTo as ephemeral,
  type FakeSlack,
  postInteraction,
  startFakeSlack,
} from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import {
  TEST_SLACK_CHANNEL as CHANNEL,
  TEST_SLACK_SIGNING_SECRET as SECRET,
  slackSettings,
  TEST_SLACK_TEAM as TEAM,
  TEST_SLACK_BOT_TOKEN as TOKEN,
} from "../support/slack-app.js";

const BOB = "U0WRITBOB";
const CAROL = "U0WRITCAROL";
const ALICE = "U0WRITALICE";
/** The Slack account of alice-gh, owner of gh-agent: the same human as reviewer frank. */
const FRANK = "U0FRANK";

let slack: FakeSlack;
let t: TestWrit;

/**
 * A writ whose Slack setup links the owner `alice-gh` (as an identity provider
 * would name her) to Slack account U0FRANK, while reviewer frank is matched to
 * that same account by its confirmed email: the configuration cannot see the
 * overlap, only the click can.
 */
async function start(slackOverrides: Record<string, unknown> = {}) {
  const extra = extraIdentities({
    agents: [
      { id: "gh-agent", owner: "alice-gh" },
      { id: "shouting-agent", owner: "ALICE" },
    ],
  });
  t = await startTestWrit({
    slack: slackSettings(slack, {
      match_by_email: true,
      owner_user_ids: { "alice-gh": FRANK, "erin-gh": "U0ERIN" },
      ...slackOverrides,
    }),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    identities: {
      agents: extra.overrides.identities.agents,
      reviewers: [
        {
          id: "frank",
          key_sha256: "0".repeat(64),
          groups: ["data-owners"],
          email: "frank@example.com",
        },
        {
          id: "erin",
          key_sha256: "1".repeat(64),
          groups: ["data-owners"],
          email: "erin@example.com",
        },
      ],
    },
  });
  Object.assign(t.keys, extra.keys);
  for (const [id, email] of [
    [FRANK, "frank@example.com"],
    ["U0ERIN", "erin@example.com"],
  ] as const) {
    slack.users.set(id, {
      id,
      team_id: TEAM,
      is_email_confirmed: true,
      profile: { email },
    });
  }
}

const post = (payload: object) =>
  postInteraction(t.writ, t.clock.now(), payload, { secret: SECRET });
const getRequest = (id: string) => readRequest(t, id);

function repliesTo(user: string) {
  return slack.accepted("chat.postEphemeral").filter((c) => c.args.user === user);
}

const ephemeralTo = (user: string, contains: string) => ephemeral(slack, user, contains);

async function postedRequest(agent: string, extra: Record<string, unknown> = {}) {
  const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, ...extra }, keyOf(t, agent));
  await slack.waitFor("chat.postMessage", (c) => JSON.stringify(c.args).includes(id));
  return id;
}

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
});

afterEach(async () => {
  await t?.close();
  await slack.close();
});

describe("Slack: the owner's Slack account never reviews", () => {
  it("refuses the owner's account on approve, deny, the deny form and reveal, whatever reviewer it maps to", async () => {
    await start();
    const id = await postedRequest("gh-agent", { context: { customer_email: "j@example.com" } });

    const clicks = [
      blockAction({ user: FRANK, actionId: "writ_approve", requestId: id }),
      blockAction({ user: FRANK, actionId: "writ_deny", requestId: id }),
      denySubmission({ user: FRANK, requestId: id, reason: "mine", channel: CHANNEL }),
      blockAction({ user: FRANK, actionId: "writ_reveal", requestId: id }),
    ];
    for (const [index, click] of clicks.entries()) {
      expect((await post(click)).status).toBe(200);
      await expect.poll(() => repliesTo(FRANK).length).toBe(index + 1);
    }

    const refused = await allEvents(t, { request_id: id, type: "approval.refused" });
    expect(
      refused.map((e) => [e.actor, e.data.channel_user_id, e.data.code, e.data.attempted]),
    ).toEqual([
      [{ kind: "reviewer", id: "frank" }, FRANK, "self_approval_forbidden", "approve"],
      [{ kind: "reviewer", id: "frank" }, FRANK, "self_approval_forbidden", "deny"],
      [{ kind: "reviewer", id: "frank" }, FRANK, "self_approval_forbidden", "deny"],
      [{ kind: "reviewer", id: "frank" }, FRANK, "self_approval_forbidden", "reveal"],
    ]);
    const request = await getRequest(id);
    expect(request.status).toBe("pending");
    expect(request.reviews).toEqual([]);
    expect(slack.accepted("views.open")).toHaveLength(0);
    expect(await allEvents(t, { request_id: id, type: "sensitive.revealed" })).toEqual([]);
    for (const reply of repliesTo(FRANK)) {
      expect(JSON.stringify(reply.args)).toContain("You own this agent");
      expect(JSON.stringify(reply.args)).not.toContain("j@example.com");
    }

    // The same account may review other agents' requests.
    const other = await postedRequest("report-agent");
    await post(blockAction({ user: FRANK, actionId: "writ_approve", requestId: other }));
    await ephemeralTo(FRANK, "more approvals are needed");
    expect((await getRequest(other)).reviews.map((r) => r.reviewer)).toEqual(["frank"]);
  });

  it("refuses the account of the person the agent acts for", async () => {
    await start();
    const id = await postedRequest("report-agent", { on_behalf_of: "erin-gh" });
    await post(blockAction({ user: "U0ERIN", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0ERIN", "You own this agent or it acts on your behalf");
    const refused = await allEvents(t, { request_id: id, type: "approval.refused" });
    expect(refused.map((e) => [e.actor.id, e.data.code])).toEqual([
      ["erin", "self_approval_forbidden"],
    ]);
    expect((await getRequest(id)).reviews).toEqual([]);
  });

  it("matches the owner's id as the domain does (case folded) when leaving owners out of approval DMs", async () => {
    await start({ channel: undefined, routing: { "data-owners": { dm: true } } });
    // Owned by "ALICE": reviewer alice (Slack U0WRITALICE) is the same person.
    const { id } = await createRequest(t, CUSTOMERS_EXPORT, keyOf(t, "shouting-agent"));
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === CAROL);
    await expect
      .poll(async () => (await allEvents(t, { request_id: id, type: "notification.sent" })).length)
      .toBe(1);
    const dms = slack
      .accepted("chat.postMessage")
      .filter((c) => JSON.stringify(c.args).includes(id))
      .map((c) => c.args.channel);
    expect(dms.sort()).toEqual([BOB, CAROL]);
    const sent = await allEvents(t, { request_id: id, type: "notification.sent" });
    expect(sent[0]?.data).toMatchObject({ target: "dm", destinations: 2 });

    // Her account is refused too, and the decision DM reaches her as the owner.
    await post(
      blockAction({ user: ALICE, actionId: "writ_approve", requestId: id, channel: "D0A" }),
    );
    await ephemeralTo(ALICE, "You own this agent");
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id, channel: "D0B" }));
    await post(
      blockAction({ user: CAROL, actionId: "writ_approve", requestId: id, channel: "D0C" }),
    );
    const dm = await slack.waitFor(
      "chat.postMessage",
      (c) => c.args.channel === ALICE && JSON.stringify(c.args).includes("was approved by"),
    );
    expect(JSON.stringify(dm.args)).toContain(id);
  });
});

describe("Slack: one workspace", () => {
  it("ignores a click whose user belongs to another workspace, even inside ours (Slack Connect)", async () => {
    await start();
    const id = await postedRequest("report-agent");
    const shared = blockAction({ user: BOB, actionId: "writ_approve", requestId: id }) as {
      user: { team_id: string };
    };
    shared.user.team_id = "T0PARTNER";
    expect((await post(shared)).status).toBe(200);
    const foreign = blockAction({
      user: CAROL,
      actionId: "writ_approve",
      requestId: id,
      team: "T0PARTNER",
    });
    expect((await post(foreign)).status).toBe(200);
    // A click from our workspace goes through, and is the only one answered.
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(BOB, "more approvals are needed");
    expect((await getRequest(id)).reviews.map((r) => r.reviewer)).toEqual(["bob"]);
    expect(slack.accepted("chat.postEphemeral")).toHaveLength(1);
    expect(await allEvents(t, { request_id: id, type: "approval.refused" })).toEqual([]);
  });

  it("ignores a click or submission that does not name the user's home workspace", async () => {
    await start();
    const id = await postedRequest("report-agent");
    const withoutHome = (payload: object) => {
      const copy = structuredClone(payload) as { user: { team_id?: string } };
      delete copy.user.team_id;
      return copy;
    };
    const withoutTeam = (payload: object) => {
      const copy = structuredClone(payload) as { team?: unknown };
      delete copy.team;
      return copy;
    };
    for (const payload of [
      withoutHome(blockAction({ user: BOB, actionId: "writ_approve", requestId: id })),
      withoutHome(blockAction({ user: CAROL, actionId: "writ_deny", requestId: id })),
      withoutHome(denySubmission({ user: CAROL, requestId: id, reason: "no", channel: CHANNEL })),
      withoutTeam(blockAction({ user: CAROL, actionId: "writ_approve", requestId: id })),
    ]) {
      expect((await post(payload)).status).toBe(200);
    }
    // A complete click from our workspace goes through, and is the only one answered.
    await post(blockAction({ user: BOB, actionId: "writ_approve", requestId: id }));
    await ephemeralTo(BOB, "more approvals are needed");
    const request = await getRequest(id);
    expect(request.status).toBe("pending");
    expect(request.reviews.map((r) => r.reviewer)).toEqual(["bob"]);
    expect(slack.accepted("chat.postEphemeral")).toHaveLength(1);
    expect(slack.accepted("views.open")).toHaveLength(0);
    expect(await allEvents(t, { request_id: id, type: "approval.form_opened" })).toEqual([]);
  });

  it("never matches by email a user whose home workspace is another", async () => {
    await start();
    slack.users.set("U0PARTNER", {
      id: "U0PARTNER",
      team_id: "T0PARTNER",
      is_email_confirmed: true,
      profile: { email: "frank@example.com" },
    });
    const id = await postedRequest("report-agent");
    await post(blockAction({ user: "U0PARTNER", actionId: "writ_approve", requestId: id }));
    await ephemeralTo("U0PARTNER", "not linked to a writ reviewer");
    expect((await getRequest(id)).reviews).toEqual([]);
  });
});
