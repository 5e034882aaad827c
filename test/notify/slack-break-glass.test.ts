import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempPolicies } from "../policy/temp-policies.js";
import { collectToken, createRequest, expectJson, keyOf } from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { type FakeSlack, type SlackCall, startFakeSlack } from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { slackSettings, TEST_SLACK_BOT_TOKEN as TOKEN } from "../support/slack-app.js";

const SECURITY = "C0SECURITY";
const CONSOLE = "https://writ.example.com/console";

let slack: FakeSlack;
let t: TestWrit | undefined;
let policies: Awaited<ReturnType<typeof tempPolicies>>;

async function start(policy: string, routing: Record<string, unknown>) {
  policies = await tempPolicies({ "break-glass.cedar": policy });
  t = await startTestWrit({
    slack: slackSettings(slack, { routing, console_url: CONSOLE }),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    policies: { dir: policies.dir, watch: false },
  });
  return t;
}

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
});
