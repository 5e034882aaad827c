import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { type DevIdentities, devSlackUserIds } from "../../src/config/dev-identities.js";
import { ConfigError, parseConfig, readEnv } from "../../src/config/load.js";
import {
  parseDevSlackUsers,
  resolveNotificationSettings,
  withSlackEnv,
} from "../../src/config/notify-config.js";
import { readSecretFile } from "../../src/config/secret-file.js";
import { writeSecretFile } from "../support/secret-file.js";

const SECRET = "8f742231b10e8888abcd99e7c5a7e58d";
const TOKEN = "xoxb-1111-2222-writtesttoken";
const reviewer = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  key_sha256: hashKey(generateKey("reviewer")),
  groups: ["data-owners"],
  ...extra,
});

function resolve(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  return resolveNotificationSettings(parseConfig(raw), { env });
}

/** The message of the ConfigError `run` throws. */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("Slack configuration", () => {
  it("is off without any Slack secret, whatever else is set", () => {
    const config = withSlackEnv(parseConfig({}), readEnv({ WRIT_SLACK_CHANNEL: "#approvals" }));
    expect(config.slack).toBeUndefined();
    expect(resolve({}).slack).toBeUndefined();
  });

  it("turns on from SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN, the file's values winning", () => {
    const env = readEnv({
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_BOT_TOKEN: TOKEN,
      WRIT_SLACK_API_URL: "http://127.0.0.1:9/api/",
      WRIT_SLACK_CHANNEL: "C0APPROVALS",
    });
    const config = withSlackEnv(parseConfig({}), env);
    expect(config.slack).toMatchObject({
      signing_secret: SECRET,
      bot_token: TOKEN,
      api_url: "http://127.0.0.1:9/api/",
      channel: "C0APPROVALS",
    });
    const filed = withSlackEnv(parseConfig({ slack: { channel: "#writ" } }), env);
    expect(filed.slack?.channel).toBe("#writ");
    const settings = resolveNotificationSettings(config, { env: {} });
    expect(settings.slack).toMatchObject({
      botToken: TOKEN,
      signingSecret: SECRET,
      socketMode: false,
    });
  });

  it("refuses to start without the signing secret or the token, naming the key", () => {
    expect(() => withSlackEnv(parseConfig({}), readEnv({ SLACK_BOT_TOKEN: TOKEN }))).not.toThrow();
    const tokenOnly = withSlackEnv(parseConfig({}), readEnv({ SLACK_BOT_TOKEN: TOKEN }));
    expect(() => resolveNotificationSettings(tokenOnly, { env: {} })).toThrow(
      /slack\.signing_secret is missing.*SLACK_SIGNING_SECRET/,
    );
    expect(() => resolve({ slack: { signing_secret: SECRET } })).toThrow(
      /slack\.bot_token is missing.*SLACK_BOT_TOKEN/,
    );
    expect(() => resolve({ slack: { bot_token: TOKEN, socket_mode: true } })).toThrow(
      /slack\.app_token is missing.*SLACK_APP_TOKEN/,
    );
    expect(
      resolve({ slack: { bot_token: TOKEN, socket_mode: true, app_token: "xapp-1-A0-123-abcdef" } })
        .slack?.socketMode,
    ).toBe(true);
  });

  it("validates values from the environment, naming the variable", () => {
    expect(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({ SLACK_BOT_TOKEN: "xoxp-user-token-123", SLACK_SIGNING_SECRET: SECRET }),
      ),
    ).toThrow(/slack\.bot_token \(or SLACK_BOT_TOKEN\)/);
    expect(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({
          SLACK_BOT_TOKEN: TOKEN,
          SLACK_SIGNING_SECRET: SECRET,
          WRIT_SLACK_API_URL: "http://slack.example.com/api/",
        }),
      ),
    ).toThrow(/WRIT_SLACK_API_URL/);
    expect(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({ SLACK_SIGNING_SECRET: "short", SLACK_BOT_TOKEN: TOKEN }),
      ),
    ).toThrow(ConfigError);
  });

  it("drops one trailing newline from Slack secrets in the environment, as from every other secret", () => {
    // A variable made from a Kubernetes secret keeps the newline `echo` wrote.
    const APP = "xapp-1-A0-123-abcdef";
    const config = withSlackEnv(
      parseConfig({}),
      readEnv({
        SLACK_SIGNING_SECRET: `${SECRET}\n`,
        SLACK_BOT_TOKEN: `${TOKEN}\r\n`,
        SLACK_APP_TOKEN: `${APP}\n`,
      }),
    );
    expect(config.slack).toMatchObject({
      signing_secret: SECRET,
      bot_token: TOKEN,
      app_token: APP,
    });
    expect(resolveNotificationSettings(config, { env: {} }).slack).toMatchObject({
      signingSecret: SECRET,
      botToken: TOKEN,
      appToken: APP,
    });
    // Only one: a value that is nothing but a newline is empty, and said so.
    const empty = refusal(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({ SLACK_SIGNING_SECRET: "\n", SLACK_BOT_TOKEN: TOKEN }),
      ),
    );
    expect(empty).toMatch(
      /slack\.signing_secret: the environment variable SLACK_SIGNING_SECRET is empty/,
    );
    // A bad value is named by its variable, never quoted.
    const userToken = "xoxp-1111-2222-userTOKENvalue";
    const bad = refusal(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({ SLACK_SIGNING_SECRET: SECRET, SLACK_BOT_TOKEN: `${userToken}\n` }),
      ),
    );
    expect(bad).toMatch(/slack\.bot_token \(or SLACK_BOT_TOKEN\): a bot token starting with xoxb-/);
    expect(bad).not.toContain("userTOKENvalue");
    const twoLines = refusal(() =>
      withSlackEnv(
        parseConfig({}),
        readEnv({ SLACK_SIGNING_SECRET: `${SECRET}\n\n`, SLACK_BOT_TOKEN: TOKEN }),
      ),
    );
    expect(twoLines).toMatch(/SLACK_SIGNING_SECRET/);
    expect(twoLines).not.toContain(SECRET);
  });

  it("rejects bad ids, unknown keys and credentials in URLs in the file", () => {
    expect(() =>
      parseConfig({
        slack: { bot_token: TOKEN, routing: { "data-owners": { channel: "approvals" } } },
      }),
    ).toThrow(/slack\.routing\.data-owners/);
    expect(() => parseConfig({ slack: { bot_token: TOKEN, surprise: true } })).toThrow(/slack/);
    expect(() =>
      parseConfig({ identities: { reviewers: [reviewer("bob", { slack_user_id: "bob" })] } }),
    ).toThrow(/slack_user_id/);
    expect(() =>
      parseConfig({
        teams: {
          webhook_url: "https://u:p@example.com/hook",
          console_url: "https://w.example.com",
        },
      }),
    ).toThrow(/teams\.webhook_url/);
  });

  it("links one Slack account to one reviewer only", () => {
    expect(() =>
      resolve({
        slack: { signing_secret: SECRET, bot_token: TOKEN },
        identities: {
          reviewers: [
            reviewer("bob", { slack_user_id: "U0SAME" }),
            reviewer("carol", { slack_user_id: "U0SAME" }),
          ],
        },
      }),
    ).toThrow(
      /identities\.reviewers\.1\.slack_user_id: Slack user U0SAME is already linked to reviewer bob/,
    );
    const settings = resolve({
      slack: { signing_secret: SECRET, bot_token: TOKEN, owner_user_ids: { dave: "U0DAVE" } },
      identities: {
        reviewers: [reviewer("bob", { slack_user_id: "U0BOB", email: "bob@example.com" })],
      },
    });
    expect(settings.slack?.people).toEqual([
      {
        reviewerId: "bob",
        groups: ["data-owners"],
        slackUserId: "U0BOB",
        email: "bob@example.com",
      },
    ]);
    expect(settings.slack?.owners).toEqual({ dave: "U0DAVE" });
  });

  it("reads the demo reviewers' Slack ids from WRIT_DEV_SLACK_USERS", () => {
    const ids = {
      reviewers: [{ id: "alice", slack_user_id: "U0A" }, { id: "bob" }, { id: "carol" }],
    } as DevIdentities;
    expect(devSlackUserIds(ids)).toEqual({ alice: "U0A" });
    expect(devSlackUserIds(ids, parseDevSlackUsers("U1AAA, U2BBB"))).toEqual({
      alice: "U1AAA",
      bob: "U2BBB",
    });
    expect(() => parseDevSlackUsers("U1AAA,alice@example.com")).toThrow(/WRIT_DEV_SLACK_USERS/);
    expect(parseDevSlackUsers(undefined)).toBeUndefined();
  });
});

describe("Teams configuration", () => {
  const CONSOLE = "https://writ.example.com/console";
  // A Workflows URL carries its signature in the query string.
  const TEAMS_URL =
    "https://prod-00.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=S1GNATURE";
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-teams-url-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("takes the webhook URL from a named variable or a private file, as other secrets", async () => {
    const fromEnv = resolve(
      { teams: { webhook_url_env: "WRIT_TEAMS_URL", console_url: CONSOLE } },
      { WRIT_TEAMS_URL: TEAMS_URL },
    );
    expect(fromEnv.teams).toEqual({ webhookUrl: TEAMS_URL, consoleUrl: CONSOLE });
    const file = await writeSecretFile(dir, "teams-url", `${TEAMS_URL}\n`, 0o600);
    const fromFile = resolve({ teams: { webhook_url_file: file, console_url: CONSOLE } });
    expect(fromFile.teams).toEqual({ webhookUrl: TEAMS_URL, consoleUrl: CONSOLE });
    expect(resolve({ teams: { webhook_url: TEAMS_URL, console_url: CONSOLE } }).teams).toEqual({
      webhookUrl: TEAMS_URL,
      consoleUrl: CONSOLE,
    });
  });

  it("needs exactly one source of the URL, and names the key of a bad one without quoting it", async () => {
    expect(refusal(() => parseConfig({ teams: { console_url: CONSOLE } }))).toMatch(
      /teams: set exactly one of webhook_url, webhook_url_env and webhook_url_file/,
    );
    expect(
      refusal(() =>
        parseConfig({
          teams: {
            webhook_url: TEAMS_URL,
            webhook_url_env: "WRIT_TEAMS_URL",
            console_url: CONSOLE,
          },
        }),
      ),
    ).toMatch(/teams: set exactly one of/);
    expect(
      refusal(() => parseConfig({ teams: { webhook_url_env: "lower", console_url: CONSOLE } })),
    ).toMatch(/teams\.webhook_url_env: an environment variable name/);
    expect(
      refusal(() =>
        resolve({ teams: { webhook_url_env: "WRIT_TEAMS_URL", console_url: CONSOLE } }),
      ),
    ).toMatch(/teams\.webhook_url_env: the environment variable WRIT_TEAMS_URL is not set/);
    const insecure = TEAMS_URL.replace("https:", "http:");
    const fromEnv = refusal(() =>
      resolve(
        { teams: { webhook_url_env: "WRIT_TEAMS_URL", console_url: CONSOLE } },
        { WRIT_TEAMS_URL: insecure },
      ),
    );
    expect(fromEnv).toMatch(/teams\.webhook_url_env \(WRIT_TEAMS_URL\): an https:\/\/ URL/);
    expect(fromEnv).not.toContain("S1GNATURE");
    const bad = await writeSecretFile(dir, "bad-url", insecure, 0o600);
    const fromFile = refusal(() =>
      resolve({ teams: { webhook_url_file: bad, console_url: CONSOLE } }),
    );
    expect(fromFile).toMatch(/teams\.webhook_url_file: an https:\/\/ URL/);
    expect(fromFile).not.toContain("S1GNATURE");
    const open = await writeSecretFile(dir, "open-url", TEAMS_URL, 0o644);
    expect(
      refusal(() => resolve({ teams: { webhook_url_file: open, console_url: CONSOLE } })),
    ).toMatch(/teams\.webhook_url_file: .* can be read by other users .*chmod 600/);
  });
});

describe("console_url", () => {
  it("refuses a query or a fragment, which would break every link built on it", () => {
    const teams = (console_url: string) => ({
      teams: { webhook_url: "https://teams.example.com/hook", console_url },
    });
    for (const url of [
      "https://writ.example.com/console?tenant=acme",
      "https://writ.example.com/console#/",
      "https://writ.example.com/console?",
    ]) {
      expect(() => parseConfig(teams(url)), url).toThrow(
        /teams\.console_url: .*query .*fragment.*<console_url>\/requests\/<id>/,
      );
      expect(() => parseConfig({ slack: { bot_token: TOKEN, console_url: url } }), url).toThrow(
        /slack\.console_url: .*query .*fragment/,
      );
    }
    expect(parseConfig(teams("https://writ.example.com/console/")).teams?.console_url).toBe(
      "https://writ.example.com/console/",
    );
  });
});

describe("webhook configuration", () => {
  it("needs exactly one secret source, long enough, and names the key when it is missing", () => {
    expect(() => parseConfig({ webhooks: [{ url: "https://siem.example.com/in" }] })).toThrow(
      /exactly one/,
    );
    expect(() =>
      resolve({ webhooks: [{ url: "https://siem.example.com/in", secret_env: "HOOK_SECRET" }] }),
    ).toThrow(/webhooks\.0\.secret_env: the environment variable HOOK_SECRET is not set/);
    expect(() =>
      resolve(
        { webhooks: [{ url: "https://siem.example.com/in", secret_env: "HOOK_SECRET" }] },
        { HOOK_SECRET: "short" },
      ),
    ).toThrow(/at least 32 characters/);
    expect(() =>
      resolve({
        webhooks: [{ url: "https://siem.example.com/in", secret_file: "/nonexistent/secret" }],
      }),
    ).toThrow(/webhooks\.0\.secret_file: cannot read/);
    const settings = resolve(
      {
        webhooks: [
          { url: "https://siem.example.com/in", secret_env: "HOOK_SECRET", events: ["token.used"] },
        ],
      },
      { HOOK_SECRET: "x".repeat(40) },
    );
    expect(settings.webhooks).toEqual([
      { url: "https://siem.example.com/in", secret: "x".repeat(40), events: ["token.used"] },
    ]);
    expect(() =>
      parseConfig({ webhooks: [{ url: "http://siem.example.com/in", secret_env: "H" }] }),
    ).toThrow(/https/);
    expect(() =>
      parseConfig({
        webhooks: [{ url: "https://s.example.com", secret_env: "H", events: ["nope"] }],
      }),
    ).toThrow(/webhooks\.0\.events/);
  });

  it("refuses two webhooks with one URL, which would share one delivery cursor", () => {
    const env = { HOOK_SECRET: "x".repeat(40) };
    const url = "https://siem.example.com/in?code=abc123";
    expect(() =>
      resolve(
        {
          webhooks: [
            { url, secret_env: "HOOK_SECRET", events: ["request.approved"] },
            { url: "https://pager.example.com/in", secret_env: "HOOK_SECRET" },
            { url, secret_env: "HOOK_SECRET", events: ["token.used"] },
          ],
        },
        env,
      ),
    ).toThrow(/webhooks\.2\.url: the same URL as webhooks\.0; use one entry per URL/);
    // The URL may carry a secret: the refusal does not quote it.
    let refusal = "";
    try {
      resolve(
        {
          webhooks: [
            { url, secret_env: "HOOK_SECRET" },
            { url, secret_env: "HOOK_SECRET" },
          ],
        },
        env,
      );
    } catch (error) {
      refusal = (error as Error).message;
    }
    expect(refusal).toMatch(/^webhooks\.1\.url: the same URL as webhooks\.0/);
    expect(refusal).not.toContain("abc123");
  });

  it("names a webhook with a short name, unique among webhooks, naming the key of a bad one", () => {
    const env = { HOOK_SECRET: "x".repeat(40) };
    const hook = (name: unknown, url = "https://siem.example.com/in") => ({
      name,
      url,
      secret_env: "HOOK_SECRET",
    });
    expect(resolve({ webhooks: [hook("siem-eu")] }, env).webhooks).toEqual([
      { name: "siem-eu", url: "https://siem.example.com/in", secret: "x".repeat(40) },
    ]);
    for (const name of ["", "SIEM", "siem eu", "-siem", "s".repeat(41), 7]) {
      expect(
        refusal(() => parseConfig({ webhooks: [hook(name)] })),
        String(name),
      ).toMatch(/webhooks\.0\.name: /);
    }
    // The shape of the key an unnamed webhook's URL gets: it could take another's position.
    expect(refusal(() => parseConfig({ webhooks: [hook("0123456789abcdef")] }))).toMatch(
      /webhooks\.0\.name: must not be 16 hexadecimal characters/,
    );
    expect(
      refusal(() =>
        resolve(
          {
            webhooks: [
              hook("siem"),
              hook("pager", "https://pager.example.com/in"),
              hook("siem", "https://siem2.example.com/in"),
            ],
          },
          env,
        ),
      ),
    ).toMatch(/^webhooks\.2\.name: the same name as webhooks\.0/);
  });

  it("takes the URL from a named variable or a private file, checked as one in the file, never quoted", async () => {
    const env = { HOOK_SECRET: "x".repeat(40) };
    // A cloud function's URL carries its key in the query string.
    const url = "https://fn.example.net/api/writ?code=FUNCTIONKEY123";
    const dir = await mkdtemp(join(tmpdir(), "writ-webhook-url-"));
    try {
      const hook = (source: Record<string, string>) => ({
        webhooks: [{ ...source, secret_env: "HOOK_SECRET" }],
      });
      const fromEnv = resolve(hook({ url_env: "HOOK_URL" }), { ...env, HOOK_URL: `${url}\n` });
      expect(fromEnv.webhooks[0]?.url).toBe(url);
      const file = await writeSecretFile(dir, "url", `${url}\n`, 0o600);
      expect(resolve(hook({ url_file: file }), env).webhooks[0]?.url).toBe(url);

      expect(refusal(() => parseConfig(hook({})))).toMatch(
        /webhooks\.0: set exactly one of url, url_env and url_file/,
      );
      expect(refusal(() => parseConfig(hook({ url, url_env: "HOOK_URL" })))).toMatch(
        /set exactly one of url, url_env and url_file/,
      );
      expect(refusal(() => parseConfig(hook({ url_env: "lower" })))).toMatch(
        /webhooks\.0\.url_env: an environment variable name/,
      );
      expect(refusal(() => resolve(hook({ url_env: "HOOK_URL" }), env))).toMatch(
        /webhooks\.0\.url_env: the environment variable HOOK_URL is not set/,
      );
      const insecure = url.replace("https:", "http:");
      const badEnv = refusal(() =>
        resolve(hook({ url_env: "HOOK_URL" }), { ...env, HOOK_URL: insecure }),
      );
      expect(badEnv).toMatch(/webhooks\.0\.url_env \(HOOK_URL\): an https:\/\/ URL/);
      const withCredentials = "https://writ:FUNCTIONKEY123@fn.example.net/api/writ";
      const badFile = await writeSecretFile(dir, "bad-url", withCredentials, 0o600);
      const fromBadFile = refusal(() => resolve(hook({ url_file: badFile }), env));
      expect(fromBadFile).toMatch(/webhooks\.0\.url_file: an https:\/\/ URL without credentials/);
      const open = await writeSecretFile(dir, "open-url", url, 0o644);
      expect(refusal(() => resolve(hook({ url_file: open }), env))).toMatch(
        /webhooks\.0\.url_file: .* can be read by other users .*chmod 600/,
      );
      // One URL, written once and read once from a variable: still one webhook.
      const twice = refusal(() =>
        resolve(
          {
            webhooks: [
              { url, secret_env: "HOOK_SECRET" },
              { url_env: "HOOK_URL", secret_env: "HOOK_SECRET" },
            ],
          },
          { ...env, HOOK_URL: url },
        ),
      );
      expect(twice).toMatch(/^webhooks\.1\.url_env: the same URL as webhooks\.0/);
      for (const message of [badEnv, fromBadFile, twice]) {
        expect(message).not.toContain("FUNCTIONKEY123");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe("a secret_file", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "writ-webhook-secret-"));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    const secretFile = (name: string, content: string, mode: number) =>
      writeSecretFile(dir, name, content, mode);

    const hook = (file: string) => ({
      webhooks: [{ url: "https://siem.example.com/in", secret_file: file }],
    });

    it("gives the secret a Kubernetes secret holds whether it is mounted or in a variable", async () => {
      // `kubectl create secret --from-file` keeps the newline `echo` wrote; the
      // variable made from that secret carries it too.
      const value = `${"k".repeat(40)}\n`;
      const file = await secretFile("both-ways", value, 0o600);
      const fromFile = resolve(hook(file)).webhooks[0]?.secret;
      const fromEnv = resolve(
        { webhooks: [{ url: "https://siem.example.com/in", secret_env: "HOOK_SECRET" }] },
        { HOOK_SECRET: value },
      ).webhooks[0]?.secret;
      expect(fromFile).toBe("k".repeat(40));
      expect(fromEnv).toBe(fromFile);
      const crlf = resolve(
        { webhooks: [{ url: "https://siem.example.com/in", secret_env: "HOOK_SECRET" }] },
        { HOOK_SECRET: `${"k".repeat(40)}\r\n` },
      ).webhooks[0]?.secret;
      expect(crlf).toBe(fromFile);
    });

    it("is read as every secret file is: private, a regular file, not empty", async () => {
      const good = await secretFile("good", `${"s".repeat(40)}\n`, 0o600);
      expect(resolve(hook(good)).webhooks[0]?.secret).toBe("s".repeat(40));

      const open = await secretFile("open", "s".repeat(40), 0o644);
      // Refused word for word as every other secret file is.
      const refusal = await readSecretFile(open, "webhooks.0.secret_file").catch(
        (error: Error) => error.message,
      );
      expect(refusal).toMatch(
        /webhooks\.0\.secret_file: .* can be read by other users .*chmod 600/,
      );
      expect(() => resolve(hook(open))).toThrow(ConfigError);
      expect(() => resolve(hook(open))).toThrow(refusal);

      const empty = await secretFile("empty", "\n", 0o600);
      expect(() => resolve(hook(empty))).toThrow(/webhooks\.0\.secret_file: .* is empty/);
      const folder = join(dir, "folder");
      await mkdir(folder);
      expect(() => resolve(hook(folder))).toThrow(
        /webhooks\.0\.secret_file: .* not a regular file/,
      );
      expect(() => resolve(hook(join(dir, "missing")))).toThrow(
        /webhooks\.0\.secret_file: cannot read .*ENOENT/,
      );
    });
  });
});
