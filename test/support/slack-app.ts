import type { FakeSlack } from "./fake-slack.js";

/** The secret the test Slack app signs its requests to writ with. */
export const TEST_SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99e7c5a7e58d";
/** The test app's bot token: the one the fake Slack accepts when started with it. */
export const TEST_SLACK_BOT_TOKEN = "xoxb-1111-2222-writtesttoken";
/** The channel the tests' writs post approval messages to. */
export const TEST_SLACK_CHANNEL = "C0APPROVALS";
/** The workspace, as the fake Slack's `auth.test` names it. */
export const TEST_SLACK_TEAM = "T0WRIT";

/**
 * writ's `slack` settings for the test app on `slack`, approvals posted to
 * {@link TEST_SLACK_CHANNEL}; `overrides` add to or replace them.
 */
export function slackSettings(
  slack: FakeSlack,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    signing_secret: TEST_SLACK_SIGNING_SECRET,
    bot_token: TEST_SLACK_BOT_TOKEN,
    api_url: slack.apiUrl,
    channel: TEST_SLACK_CHANNEL,
    team_id: TEST_SLACK_TEAM,
    ...overrides,
  };
}
