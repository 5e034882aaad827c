import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { tempPolicies } from "../policy/temp-policies.js";
import { collectToken, createRequest, expectJson, keyOf } from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { type FakeSlack, type SlackCall, startFakeSlack } from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { slackSettings, TEST_SLACK_BOT_TOKEN as TOKEN } from "../support/slack-app.js";

const SECURITY = "C0SECURITY";
const CAROL = "U0WRITCAROL";
const ERIN = "U0WRITERIN";
const SAM = "U0WRITSAM";
const CONSOLE = "https://writ.example.com/console";

let slack: FakeSlack;
let t: TestWrit | undefined;
let policies: Awaited<ReturnType<typeof tempPolicies>>;

async function start(
  policy: string,
  routing: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  policies = await tempPolicies({ "break-glass.cedar": policy });
  t = await startTestWrit({
    slack: slackSettings(slack, { routing, console_url: CONSOLE }),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    policies: { dir: policies.dir, watch: false },
    ...extra,
  });
  return t;
}

/** The after-review notice's header and body, as the Slack message now reads. */
function noticeText(call: SlackCall): { header: string; body: string } {
  const blocks = call.args.blocks as { type: string; text?: { text: string } }[];
  return {
    header: blocks.find((b) => b.type === "header")?.text?.text ?? "",
    body: blocks.find((b) => b.type === "section")?.text?.text ?? "",
  };
}

const reviewAfter = (writ: TestWrit, who: string, id: string, body: object) =>
  writ.call("POST", `/v1/requests/${id}/review-after`, { key: keyOf(writ, who), body });

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
});

afterEach(async () => {
  await t?.close();
  t = undefined;
  await slack.close();
  await policies?.remove();
});

const textOf = (c: SlackCall) => JSON.stringify(c.args);
const postsAbout = (id: string) =>
  slack.accepted("chat.postMessage").filter((c) => textOf(c).includes(id));

describe("Slack: break-glass notices", () => {
  it("tells the @notify groups at once, then asks @review_after to look back once issued, without buttons", async () => {
    const writ = await start(BREAK_GLASS_POLICY, { security: { channel: SECURITY } });
    const { id } = await createRequest(writ, BREAK_GLASS);
    const headsUp = await slack.waitFor(
      "chat.postMessage",
      (c) => textOf(c).includes(id) && textOf(c).includes("Heads-up"),
    );
    expect(headsUp.args.channel).toBe(SECURITY);
    expect(headsUp.args.text).toContain("Heads-up: allowed at once by policy");
    expect(textOf(headsUp)).toContain("INC-4711");
    expect(textOf(headsUp)).toContain("To be reviewed after the fact by security");
    // A heads-up, not a prompt: no buttons at all.
    expect(textOf(headsUp)).not.toContain('"actions"');
    expect(textOf(headsUp)).not.toContain("writ_approve");

    await collectToken(writ, id);
    const prompt = await slack.waitFor(
      "chat.postMessage",
      (c) => textOf(c).includes(id) && textOf(c).includes("review it after the fact"),
    );
    expect(prompt.args.channel).toBe(SECURITY);
    expect(prompt.args.text).toContain("Credential issued: review it after the fact");
    expect(textOf(prompt)).toContain(`${CONSOLE}/requests/${id}`);
    expect(textOf(prompt)).not.toContain('"actions"');

    // The review itself posts nothing new; each notice went out once.
    await expectJson(
      await writ.call("POST", `/v1/requests/${id}/review-after`, {
        key: keyOf(writ, "carol"),
        body: { verdict: "ok" },
      }),
      200,
    );
    await writ.call("POST", `/v1/requests/${id}/complete`, { key: keyOf(writ, "report-agent") });
    await new Promise((resolve) => setImmediate(resolve));
    expect(postsAbout(id)).toHaveLength(2);
  });

  it("tells the @notify groups again when the policies in force deny at collection what was allowed", async () => {
    const writ = await start(BREAK_GLASS_POLICY, { security: { channel: SECURITY } });
    const { id } = await createRequest(writ, BREAK_GLASS);
    await slack.waitFor("chat.postMessage", (c) => textOf(c).includes("Heads-up: allowed"));
    // A guardrail lands before the agent collects.
    await policies.write("guardrail.cedar", `@id("freeze") forbid (principal, action, resource);`);
    await (writ.writ.broker.deps.policy as unknown as { reload(): Promise<void> }).reload();
    const denied = await writ.call("POST", `/v1/requests/${id}/credential`, {
      key: keyOf(writ, "report-agent"),
    });
    expect(denied.status).toBe(403);
    const again = await slack.waitFor(
      "chat.postMessage",
      (c) => textOf(c).includes(id) && !textOf(c).includes("Heads-up: allowed"),
    );
    expect(again.args.channel).toBe(SECURITY);
    expect(String(again.args.text)).toMatch(/denied/i);
  });

  it("DMs group members, but never the agent's owner about its own request", async () => {
    const policy = BREAK_GLASS_POLICY.replace('@notify("security")', '@notify("data-owners")');
    const writ = await start(policy, { "data-owners": { dm: true } });
    const { id } = await createRequest(writ, BREAK_GLASS);
    await expect
      .poll(() =>
        postsAbout(id)
          .map((c) => c.args.channel)
          .sort(),
      )
      .toEqual(["U0WRITBOB", "U0WRITCAROL"]);
    expect(postsAbout(id).some((c) => c.args.channel === "U0WRITALICE")).toBe(false);
  });

  it("tells the person the agent names as on_behalf_of too: an agent does not choose who hears of it", async () => {
    const policy = BREAK_GLASS_POLICY.replace('@notify("security")', '@notify("data-owners")');
    const writ = await start(policy, { "data-owners": { dm: true } });
    // Naming carol keeps her from reviewing (rule 2), not from being told what was allowed.
    const { id } = await createRequest(writ, { ...BREAK_GLASS, on_behalf_of: "carol" });
    await expect
      .poll(() =>
        postsAbout(id)
          .filter((c) => textOf(c).includes("Heads-up"))
          .map((c) => c.args.channel)
          .sort(),
      )
      .toEqual(["U0WRITBOB", "U0WRITCAROL"]);
  });

  it("updates the after-review notice in place with a concern: marked as one, by whom, when, and the note escaped", async () => {
    const writ = await start(BREAK_GLASS_POLICY, { security: { channel: SECURITY } });
    const { id } = await createRequest(writ, BREAK_GLASS);
    await slack.waitFor("chat.postMessage", (c) => textOf(c).includes("Heads-up"));
    await collectToken(writ, id);
    await slack.waitFor("chat.postMessage", (c) => textOf(c).includes("review it after the fact"));
    writ.clock.advance(120);
    // Slack fails the first update in a way worth retrying: the event is delivered again.
    slack.failNext("chat.update", 1, { status: 503 });
    const note = `<!channel> exported *more* rows than <https://evil.example|asked>\u2028${"x".repeat(1500)}`;
    await expectJson(await reviewAfter(writ, "carol", id, { verdict: "concern", note }), 200);

    const updated = await slack.waitFor("chat.update", (c) => textOf(c).includes(id));
    expect(updated.args.channel).toBe(SECURITY);
    const { header, body } = noticeText(updated);
    expect(header).toBe(":warning: Concern raised in the review after the fact");
    expect(updated.args.text).toBe(
      "Concern raised in the review after the fact: report-agent db:export",
    );
    expect(body).toContain("INC-4711");
    expect(body).not.toContain("To be reviewed after the fact");
    expect(body).toContain(
      `*Reviewed after the fact* by *carol* (<@U0WRITCAROL>) <!date^${Math.floor(writ.clock.now() / 1000)}^`,
    );
    expect(body).toContain("(api): *concern*");
    // The note is the reviewer's text: it cannot ping, link or break onto a line of its own.
    expect(body).toContain(
      "*Note* &lt;!channel&gt; exported *more* rows than &lt;https://evil.example|asked&gt;\\u2028xxx",
    );
    expect(body).not.toContain("<!channel>");
    expect(body.split("\n").at(-2)?.endsWith("x…")).toBe(true);
    expect(body.length).toBeLessThan(1200);

    // The failed update was tried again; the notice now reads as the last update left it.
    expect(
      slack.calls
        .filter((c) => c.method === "chat.update" && textOf(c).includes(id))
        .map((c) => c.outcome),
    ).toEqual(["http_503", "ok"]);
    expect(slack.message(SECURITY, String(updated.args.ts))?.blocks).toEqual(updated.args.blocks);
    // The heads-up, posted first, reads as it did; nothing new was posted.
    expect(String(slack.message(SECURITY, "1768467600.000001")?.text)).toContain("Heads-up");
    expect(updated.args.ts).not.toBe("1768467600.000001");
    expect(postsAbout(id)).toHaveLength(2);
  });

  it("updates each member's DM with the outcome, and skips a notice that could not be posted", async () => {
    const erin = generateKey("reviewer");
    const sam = generateKey("reviewer");
    const writ = await start(
      BREAK_GLASS_POLICY,
      { security: { dm: true } },
      {
        identities: {
          reviewers: [
            { id: "erin", key_sha256: hashKey(erin), groups: ["security"], slack_user_id: ERIN },
            { id: "sam", key_sha256: hashKey(sam), groups: ["security"], slack_user_id: SAM },
          ],
        },
      },
    );
    writ.keys.sam = sam;
    const { id } = await createRequest(writ, BREAK_GLASS);
    await expect
      .poll(() => postsAbout(id).filter((c) => textOf(c).includes("Heads-up")).length)
      .toBe(3);
    // The first member's after-review DM is refused for good (a deactivated account).
    slack.failNext("chat.postMessage", 1, { error: "channel_not_found" });
    await collectToken(writ, id);
    const notices = () =>
      slack.calls.filter(
        (c) => c.method === "chat.postMessage" && textOf(c).includes("review it after the fact"),
      );
    await expect
      .poll(() => notices().map((c) => c.outcome))
      .toEqual(["channel_not_found", "ok", "ok"]);
    const refused = String(notices()[0]?.args.channel);

    await expectJson(await reviewAfter(writ, "sam", id, { verdict: "ok" }), 200);
    await expect
      .poll(() => slack.accepted("chat.update").filter((c) => textOf(c).includes(id)).length)
      .toBe(2);
    // One delivery updates every notice in turn: once two are, it is over.
    const updates = slack.calls.filter((c) => c.method === "chat.update" && textOf(c).includes(id));
    expect(updates.map((c) => c.outcome)).toEqual(["ok", "ok"]);
    expect(updates.map((c) => String(c.args.channel)).sort()).toEqual(
      [CAROL, ERIN, SAM]
        .filter((u) => u !== refused)
        .map((u) => `D${u.slice(1)}`)
        .sort(),
    );
    for (const update of updates) {
      const { header, body } = noticeText(update);
      expect(header).toBe(":white_check_mark: Reviewed after the fact: no concern");
      expect(body).toContain(`*Reviewed after the fact* by *sam* (<@${SAM}>)`);
      expect(body).toContain("(api): *ok*, no concern");
      expect(body).not.toContain("*Note*");
    }
  });
});
