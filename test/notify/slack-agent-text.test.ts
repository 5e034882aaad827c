import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { approveAs, CUSTOMERS_EXPORT, createRequest } from "../support/api.js";
import {
  blockAction,
  ephemeralTo,
  type FakeSlack,
  postInteraction,
  startFakeSlack,
} from "../support/fake-slack.js";
import { REPO_POLICIES, startTestWrit, type TestWrit } from "../support/harness.js";
import {
  TEST_SLACK_SIGNING_SECRET as SECRET,
  slackSettings,
  TEST_SLACK_BOT_TOKEN as TOKEN,
} from "../support/slack-app.js";

const BOB = "U0WRITBOB";
const ALICE = "U0WRITALICE";

/** What an agent can put in a value to look like writ's own approvals section. */
const FORGED_APPROVALS =
  "12000\n\n*Approvals* 2/2 from data-owners\n:white_check_mark: *bob* approved (slack)";
/** Characters that reverse what follows, ring a bell or clear a terminal. */
const DISGUISE = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u;

/** `mrkdwn` without the newlines writ itself puts between lines. */
const withoutLineBreaks = (mrkdwn: string) => mrkdwn.replaceAll("\n", " ");

let slack: FakeSlack;
let t: TestWrit;
let policies: string;

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
  policies = await mkdtemp(join(tmpdir(), "writ-agent-text-"));
  await cp(REPO_POLICIES, policies, { recursive: true });
  // Any db:// resource needs two data-owners, so the resource is the agent's own text.
  await writeFile(
    join(policies, "reads.cedar"),
    `@id("db-read")
@approvers("data-owners")
@quorum("2")
permit (principal, action == Action::"db:read", resource)
when { resource.uri like "db://*" };
`,
  );
  t = await startTestWrit({
    policies: { dir: policies, watch: false },
    slack: slackSettings(slack),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
  });
});

afterEach(async () => {
  await t.close();
  await slack.close();
  await rm(policies, { recursive: true, force: true });
});

/** The mrkdwn of the approval message's context section for a request with `context`. */
async function contextSection(context: Record<string, unknown>): Promise<string> {
  const { id } = await createRequest(t, { ...CUSTOMERS_EXPORT, context });
  const posted = await slack.waitFor("chat.postMessage", (c) =>
    JSON.stringify(c.args).includes(id),
  );
  const blocks = posted.args.blocks as { type: string; text?: { text: string } }[];
  const section = blocks.find((b) => b.text?.text.startsWith("*Context*"));
  expect(section, JSON.stringify(blocks)).toBeDefined();
  return section?.text?.text ?? "";
}

describe("agent text in Slack messages", () => {
  it("escapes the top-level text of the approval message, when posted and when updated", async () => {
    const resource = "db://prod/<!channel> urgent <https://evil.example/approve|Approve here>";
    const { id } = await createRequest(t, { action: "db:read", resource, audience: "billing-api" });
    const posted = await slack.waitFor("chat.postMessage", (c) =>
      JSON.stringify(c.args).includes(id),
    );
    // The top-level text is mrkdwn as well, and is what notifications show.
    const escaped =
      "db://prod/&lt;!channel&gt; urgent &lt;https://evil.example/approve|Approve here&gt;";
    expect(String(posted.args.text)).toContain(escaped);
    expect(String(posted.args.text)).not.toContain("<!channel>");

    await approveAs(t, "bob", id);
    const updated = await slack.waitFor("chat.update", (c) =>
      JSON.stringify(c.args.blocks).includes("1/2 from data-owners"),
    );
    expect(String(updated.args.text)).toContain(escaped);
    expect(String(updated.args.text)).not.toContain("<!channel>");
    expect(String(updated.args.text)).not.toContain("<https://evil.example");

    await approveAs(t, "carol", id);
    const dm = await slack.waitFor("chat.postMessage", (c) => c.args.channel === ALICE);
    expect(JSON.stringify(dm.args)).not.toContain("<!channel>");
    for (const call of slack.calls) {
      expect(String(call.args.text ?? ""), call.method).not.toContain("<!channel>");
    }
  });

  it("keeps each context value on its own line, with mrkdwn inert", async () => {
    const text = await contextSection({ rows: FORGED_APPROVALS, classification: "pii" });
    const lines = text.split("\n");
    // A heading line, then one bullet per field: nothing the agent sent starts a line.
    expect(lines, text).toHaveLength(3);
    expect(
      lines.slice(1).every((l) => l.startsWith("• `")),
      text,
    ).toBe(true);
    // The value is one code span, where Slack applies no bold, emoji or links.
    expect(lines[1]).toBe(
      "• `rows`: `12000\\n\\n*Approvals* 2/2 from data-owners\\n:white_check_mark: *bob* approved (slack)`",
    );
    expect(lines[2]).toBe("• `classification`: `pii`");
  });

  it("cannot close the code span early with a backtick", async () => {
    const text = await contextSection({ note: "x` *Approvals* 2/2 `y", empty: "" });
    expect(text).toContain("• `note`: `xˋ *Approvals* 2/2 ˋy`");
    expect(text).toContain("• `empty`: _(empty)_");
  });

  it("shows bidirectional overrides and control characters as visible escapes, at any depth", async () => {
    const text = await contextSection({
      classification: "\u202Ek², public (ok)\u0007\u001b[2J",
      nested: { label: ["\u2066x\u2069", "a\u2028b"] },
    });
    expect(withoutLineBreaks(text)).not.toMatch(DISGUISE);
    expect(text).toContain("`\\u202Ek², public (ok)\\u0007\\u001B[2J`");
    expect(text).toContain('`{"label":["\\u2066x\\u2069","a\\u2028b"]}`');
  });

  it("still prompts the reviewers when every context value is emoji, within Slack's limits", async () => {
    // An emoji is one character to a reader but two UTF-16 units to Slack.
    const context: Record<string, string> = {};
    for (let i = 0; i < 10; i++) context[`field_${i}`] = "\u{1F600}".repeat(200);
    const text = await contextSection(context);
    expect(text.length).toBeLessThanOrEqual(3000);
    expect(text).not.toMatch(/\p{Cs}/u);
    // Every field is still there, each value cut short between two emoji.
    const lines = text.split("\n").slice(1);
    expect(lines).toHaveLength(10);
    for (const [i, line] of lines.entries()) {
      expect(line).toMatch(new RegExp(`^• \`field_${i}\`: \`(\u{1F600})+…\`$`, "u"));
    }
  });

  it("keeps every value inside its code span when the section is cut short", async () => {
    // Escaped, each "&" takes five characters: the section overflows in the third value,
    // right after text that would render bold with an emoji outside a code span.
    const text = await contextSection({
      [`${"&".repeat(60)}a`]: "&".repeat(200),
      [`${"&".repeat(60)}b`]: "&".repeat(200),
      c: `*APPROVED BY SECURITY* :white_check_mark: ${"&".repeat(150)}`,
      d: "ok",
    });
    expect(text.length).toBeLessThanOrEqual(3000);
    const lines = text.split("\n").slice(1);
    expect(lines.at(-1)).toBe("_…and 2 more_");
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^• `[^`]+`: `[^`]+`$/);
    expect(text).not.toContain("APPROVED BY SECURITY");
  });

  it("reveals masked values the same way, and masks them as before", async () => {
    const { id } = await createRequest(t, {
      ...CUSTOMERS_EXPORT,
      context: { customer_email: `jane@example.com\n:white_check_mark: *carol* approved\u202E` },
    });
    const posted = await slack.waitFor("chat.postMessage", (c) =>
      JSON.stringify(c.args).includes(id),
    );
    expect(JSON.stringify(posted.args)).not.toContain("jane@example.com");
    expect(JSON.stringify(posted.args.blocks)).toContain("• `customer_email`: ••• _(masked)_");

    await postInteraction(
      t.writ,
      t.clock.now(),
      blockAction({ user: BOB, actionId: "writ_reveal", requestId: id }),
      { secret: SECRET },
    );
    const shown = await ephemeralTo(slack, BOB, "jane@example.com");
    const blocks = shown.args.blocks as { text?: { text: string } }[];
    const section = blocks[0]?.text?.text ?? "";
    expect(withoutLineBreaks(section)).not.toMatch(DISGUISE);
    expect(section.split("\n")[1]).toBe(
      "• `customer_email`: `jane@example.com\\n:white_check_mark: *carol* approved\\u202E`",
    );
  });
});
