import { afterEach, describe, expect, it } from "vitest";
import {
  CUSTOMERS_EXPORT,
  createRequest,
  expectJson,
  keyOf,
  type RequestBody,
} from "../support/api.js";
import { blockAction, type FakeSlack, startFakeSlack } from "../support/fake-slack.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

const BOT_TOKEN = "xoxb-1111-2222-writtesttoken";
const APP_TOKEN = "xapp-1-A0WRIT-3333-sockettoken";

let slack: FakeSlack | undefined;
let t: TestWrit | undefined;

afterEach(async () => {
  await t?.close();
  await slack?.close();
});

describe("Slack over Socket Mode", () => {
  it("connects with the app token, serves no HTTP endpoint, and approves through the socket", async () => {
    slack = await startFakeSlack(BOT_TOKEN, { appToken: APP_TOKEN });
    t = await startTestWrit({
      slack: {
        socket_mode: true,
        app_token: APP_TOKEN,
        bot_token: BOT_TOKEN,
        api_url: slack.apiUrl,
        channel: "C0APPROVALS",
      },
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    await slack.socketConnected();
    expect(slack.accepted("apps.connections.open")).toHaveLength(1);
    // No signing secret, so no HTTP endpoint to forge payloads against.
    expect(
      (await t.writ.app.request("/slack/events", { method: "POST", body: "payload=%7B%7D" }))
        .status,
    ).toBe(404);

    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", (c) => JSON.stringify(c.args).includes(id));
    const ack = await slack.sendEnvelope(
      "interactive",
      blockAction({ user: "U0WRITBOB", actionId: "writ_approve", requestId: id }),
    );
    expect(ack.envelope_id).toBeDefined();
    await slack.waitFor("chat.postEphemeral", (c) => c.args.user === "U0WRITBOB");
    const request = await expectJson<RequestBody>(
      await t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, "dana") }),
      200,
    );
    expect(request.reviews.map((r) => r.reviewer)).toEqual(["bob"]);
  });
});
