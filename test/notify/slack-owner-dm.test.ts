import { cp } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEMO_POLICIES_DIR, tempPolicies } from "../policy/temp-policies.js";
import { approveAs, CUSTOMERS_EXPORT, createRequest, expectError, keyOf } from "../support/api.js";
import { type FakeSlack, type SlackCall, startFakeSlack } from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { slackSettings, TEST_SLACK_BOT_TOKEN as TOKEN } from "../support/slack-app.js";

const ALICE = "U0WRITALICE";

// The export's resource, frozen by a guardrail added after the request was approved.
const FREEZE = `
@id("incident-freeze")
forbid (principal, action, resource)
when { resource.uri like "db://prod/*" };
`;

let slack: FakeSlack;
let t: TestWrit;
let policies: Awaited<ReturnType<typeof tempPolicies>>;

beforeEach(async () => {
  slack = await startFakeSlack(TOKEN);
  policies = await tempPolicies({});
  await cp(join(DEMO_POLICIES_DIR, "demo.cedar"), join(policies.dir, "demo.cedar"));
  t = await startTestWrit({
    slack: slackSettings(slack),
    notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    policies: { dir: policies.dir, watch: false },
  });
});

afterEach(async () => {
  await t?.close();
  await slack.close();
  await policies.remove();
});

const textOf = (c: SlackCall) => JSON.stringify(c.args);
const ownerDms = (id: string) =>
  slack
    .accepted("chat.postMessage")
    .filter((c) => c.args.channel === ALICE && textOf(c).includes(id));

/** Creates the export and waits for its approval message. */
async function postedExport(): Promise<string> {
  const { id } = await createRequest(t, CUSTOMERS_EXPORT);
  await slack.waitFor("chat.postMessage", (c) => textOf(c).includes(id));
  return id;
}

async function approveTwice(id: string) {
  await approveAs(t, "bob", id);
  await approveAs(t, "carol", id);
}

describe("Slack: the owner's decision DM", () => {
  it("says denied by policy when the policies in force at collection deny an approved request", async () => {
    const id = await postedExport();
    await approveTwice(id);
    await expect.poll(() => ownerDms(id).length).toBe(1);
    expect(textOf(ownerDms(id)[0] as SlackCall)).toContain("was approved by");

    await policies.write("freeze.cedar", FREEZE);
    await (t.writ.broker.deps.policy as unknown as { reload(): Promise<void> }).reload();
    await expectError(
      await t.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(t, "report-agent") }),
      403,
      "policy_denied",
    );

    await expect.poll(() => ownerDms(id).length).toBe(2);
    const denied = ownerDms(id)[1] as SlackCall;
    expect(denied.args.text).toBe("report-agent: Denied by policy");
    expect(textOf(denied)).toContain("was denied by policy");
    expect(textOf(denied)).not.toContain("was approved by");
  });

  it("announces the approval it was sent for, even when Slack delivers it after the request expired uncollected", async () => {
    const id = await postedExport();
    // Slack is down for the owner's DM until after the collection window.
    slack.failNext("chat.postMessage", 10_000, { status: 503 });
    await approveTwice(id);
    await expect
      .poll(() =>
        slack.calls.some((c) => c.method === "chat.postMessage" && c.outcome === "http_503"),
      )
      .toBe(true);
    t.clock.advance(301);
    expect(await t.writ.broker.expireDue()).toBeGreaterThanOrEqual(1);
    slack.recover("chat.postMessage");

    await expect.poll(() => ownerDms(id).length).toBe(1);
    const dm = ownerDms(id)[0] as SlackCall;
    expect(dm.args.text).toBe("report-agent: Approved");
    expect(textOf(dm)).toContain("was approved by");
    expect(textOf(dm)).not.toContain("before enough approvals");
    // The expiry of the uncollected credential is no decision: no second DM.
    await slack.waitFor("chat.update", (c) => textOf(c).includes("was not collected in time"));
    expect(ownerDms(id)).toHaveLength(1);
  });
});
