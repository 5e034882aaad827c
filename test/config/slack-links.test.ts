import { describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { resolveNotificationSettings } from "../../src/config/notify-config.js";
import type { Principal } from "../../src/domain/principal.js";

const SECRET = "8f742231b10e8888abcd99e7c5a7e58d";
const TOKEN = "xoxb-1111-2222-writtesttoken";
const SLACK = { signing_secret: SECRET, bot_token: TOKEN };
const reviewer = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  key_sha256: hashKey(generateKey("reviewer")),
  groups: ["data-owners"],
  ...extra,
});

function resolve(
  raw: Record<string, unknown>,
  options: { principals?: Principal[]; slackUserIds?: Record<string, string> } = {},
) {
  return resolveNotificationSettings(parseConfig(raw), { env: {}, ...options });
}

function configError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("slack.owner_user_ids and reviewers' Slack accounts", () => {
  it("refuses an owner's Slack account that is another person's reviewer account, naming the key and the fix", () => {
    const message = configError(() =>
      resolve({
        slack: { ...SLACK, owner_user_ids: { "alice-gh": "U0ALICE" } },
        identities: { reviewers: [reviewer("alice", { slack_user_id: "U0ALICE" })] },
      }),
    );
    expect(message).toMatch(/^slack\.owner_user_ids\.alice-gh: Slack user U0ALICE/);
    expect(message).toContain("reviewer alice's slack_user_id");
    expect(message).toContain("Give alice-gh their own Slack account here, or remove the entry");
    expect(message).toContain("docs/oidc.md");
  });

  it("checks the demo reviewers' links too (writ dev)", () => {
    const message = configError(() =>
      resolve(
        { slack: { ...SLACK, owner_user_ids: { mallory: "U0BOB" } } },
        {
          principals: [{ kind: "reviewer", id: "bob", groups: ["data-owners"] }],
          slackUserIds: { bob: "U0BOB" },
        },
      ),
    );
    expect(message).toMatch(/^slack\.owner_user_ids\.mallory: .*reviewer bob's/);
  });

  it("accepts the same account for one person, whatever the case of the id", () => {
    for (const ownerId of ["alice", "Alice", "ALICE"]) {
      const settings = resolve({
        slack: { ...SLACK, owner_user_ids: { [ownerId]: "U0ALICE" } },
        identities: { reviewers: [reviewer("alice", { slack_user_id: "U0ALICE" })] },
      });
      expect(settings.slack?.owners).toEqual({ [ownerId]: "U0ALICE" });
    }
    // An owner with an account of their own is the ordinary case.
    expect(
      resolve({
        slack: { ...SLACK, owner_user_ids: { dave: "U0DAVE" } },
        identities: { reviewers: [reviewer("bob", { slack_user_id: "U0BOB" })] },
      }).slack?.owners,
    ).toEqual({ dave: "U0DAVE" });
  });
});

describe("slack.team_id with match_by_email", () => {
  it("is required, naming the key", () => {
    const message = configError(() => parseConfig({ slack: { ...SLACK, match_by_email: true } }));
    expect(message).toMatch(/slack\.team_id: is required with slack\.match_by_email/);
    expect(
      parseConfig({ slack: { ...SLACK, match_by_email: true, team_id: "T0WRIT" } }).slack?.team_id,
    ).toBe("T0WRIT");
    expect(parseConfig({ slack: SLACK }).slack?.team_id).toBeUndefined();
  });
});
