import type { Principal } from "../domain/principal.js";
import { samePerson } from "../domain/review.js";
import type { NotificationSettings, SlackSettings } from "../notify/setup.js";
import type { SlackPerson } from "../notify/slack/directory.js";
import { ConfigError, type WritEnv } from "./load.js";
import { SlackConfig, serviceUrl } from "./notify-schema.js";
import type { WritConfig } from "./schema.js";
import { readSecretEnv, readSecretFileSync } from "./secret-file.js";

/** Webhook secrets shorter than this are refused: they sign what SIEMs and pagers trust. */
const MIN_WEBHOOK_SECRET = 32;

/**
 * Fills the `slack` section from the environment, Bolt's way: SLACK_SIGNING_SECRET,
 * SLACK_BOT_TOKEN and SLACK_APP_TOKEN, plus WRIT_SLACK_API_URL and
 * WRIT_SLACK_CHANNEL. A value in the configuration file wins over the
 * environment. Without any Slack secret anywhere, Slack stays off and the
 * section is left as it was.
 */
export function withSlackEnv(config: WritConfig, env: WritEnv): WritConfig {
  const file = config.slack;
  // Read as every other secret is, one trailing newline dropped: a signing
  // secret keeping it would fail every signature check, and a token keeping it
  // would be refused as not a token.
  const secret = (
    variable: "SLACK_SIGNING_SECRET" | "SLACK_BOT_TOKEN" | "SLACK_APP_TOKEN",
    key: string,
  ) =>
    env[variable] === undefined
      ? undefined
      : readSecretEnv(variable, key, { [variable]: env[variable] });
  const signingSecret = secret("SLACK_SIGNING_SECRET", "slack.signing_secret");
  const botToken = secret("SLACK_BOT_TOKEN", "slack.bot_token");
  const appToken = secret("SLACK_APP_TOKEN", "slack.app_token");
  const anySecret =
    file?.signing_secret ??
    file?.bot_token ??
    file?.app_token ??
    signingSecret ??
    botToken ??
    appToken;
  if (file === undefined && anySecret === undefined) return config;
  const merged = {
    ...file,
    ...(file?.signing_secret === undefined && signingSecret !== undefined
      ? { signing_secret: signingSecret }
      : {}),
    ...(file?.bot_token === undefined && botToken !== undefined ? { bot_token: botToken } : {}),
    ...(file?.app_token === undefined && appToken !== undefined ? { app_token: appToken } : {}),
    ...(file?.api_url === undefined && env.WRIT_SLACK_API_URL !== undefined
      ? { api_url: env.WRIT_SLACK_API_URL }
      : {}),
    ...(file?.channel === undefined && env.WRIT_SLACK_CHANNEL !== undefined
      ? { channel: env.WRIT_SLACK_CHANNEL }
      : {}),
  };
  const parsed = SlackConfig.safeParse(merged);
  if (!parsed.success) {
    const envName: Record<string, string> = {
      signing_secret: "SLACK_SIGNING_SECRET",
      bot_token: "SLACK_BOT_TOKEN",
      app_token: "SLACK_APP_TOKEN",
      api_url: "WRIT_SLACK_API_URL",
      channel: "WRIT_SLACK_CHANNEL",
    };
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      const from = envName[key];
      return `  slack.${issue.path.map(String).join(".")}${from ? ` (or ${from})` : ""}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid Slack configuration:\n${lines.join("\n")}`);
  }
  return { ...config, slack: parsed.data };
}

/** The demo reviewers' Slack ids from WRIT_DEV_SLACK_USERS (`id1,id2,…`, in reviewer order). */
export function parseDevSlackUsers(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const ids = value.split(",").map((s) => s.trim());
  for (const id of ids) {
    if (!/^[UW][A-Z0-9]{2,20}$/.test(id)) {
      throw new ConfigError(
        `WRIT_DEV_SLACK_USERS: "${id.slice(0, 40)}" is not a Slack user id like U012AB3CD`,
      );
    }
  }
  return ids;
}

function missing(key: string, envName: string): ConfigError {
  return new ConfigError(
    `Slack is configured but ${key} is missing: set it in the configuration file or in ${envName}.`,
  );
}

function slackSettings(
  config: WritConfig,
  principals: readonly Principal[],
  slackUserIds: Readonly<Record<string, string>>,
): SlackSettings | undefined {
  const slack = config.slack;
  if (slack === undefined) return undefined;
  // Refuse to start half-configured: an unauthenticated endpoint or a bot that cannot post.
  if (slack.bot_token === undefined) throw missing("slack.bot_token", "SLACK_BOT_TOKEN");
  if (slack.socket_mode) {
    if (slack.app_token === undefined) throw missing("slack.app_token", "SLACK_APP_TOKEN");
  } else if (slack.signing_secret === undefined) {
    throw missing("slack.signing_secret", "SLACK_SIGNING_SECRET");
  }
  const people: SlackPerson[] = [];
  const seen = new Map<string, string>();
  const link = (reviewerId: string, slackUserId: string | undefined, key: string) => {
    if (slackUserId === undefined) return;
    const other = seen.get(slackUserId);
    if (other !== undefined && other !== reviewerId) {
      throw new ConfigError(
        `${key}: Slack user ${slackUserId} is already linked to reviewer ${other}; one Slack account, one reviewer.`,
      );
    }
    seen.set(slackUserId, reviewerId);
  };
  // Two reviewers with one email are refused with the configuration itself.
  config.identities.reviewers.forEach((r, index) => {
    const slackUserId = r.slack_user_id ?? slackUserIds[r.id];
    link(r.id, slackUserId, `identities.reviewers.${index}.slack_user_id`);
    people.push({
      reviewerId: r.id,
      groups: r.groups,
      ...(slackUserId !== undefined ? { slackUserId } : {}),
      ...(r.email !== undefined ? { email: r.email } : {}),
    });
  });
  const configured = new Set(config.identities.reviewers.map((r) => r.id));
  for (const principal of principals) {
    if (principal.kind !== "reviewer" || configured.has(principal.id)) continue;
    const slackUserId = slackUserIds[principal.id];
    link(principal.id, slackUserId, `Slack id of reviewer ${principal.id}`);
    people.push({
      reviewerId: principal.id,
      groups: principal.groups,
      ...(slackUserId !== undefined ? { slackUserId } : {}),
    });
  }
  // An owner's Slack account that is also someone else's reviewer account would let
  // the owner's clicks count as that reviewer's approvals of the owner's agents.
  for (const [ownerId, slackUserId] of Object.entries(slack.owner_user_ids)) {
    const reviewerId = seen.get(slackUserId);
    if (reviewerId !== undefined && !samePerson(reviewerId, ownerId)) {
      throw new ConfigError(
        `slack.owner_user_ids.${ownerId}: Slack user ${slackUserId} is also reviewer ${reviewerId}'s slack_user_id, so clicks by the owner ${ownerId} would count as ${reviewerId}'s approvals. Give ${ownerId} their own Slack account here, or remove the entry; if ${ownerId} and ${reviewerId} are one person, make the agent's owner id ${reviewerId} (for workload identities, map agent.owner to it: see docs/oidc.md).`,
      );
    }
  }
  return {
    ...(slack.signing_secret !== undefined ? { signingSecret: slack.signing_secret } : {}),
    botToken: slack.bot_token,
    socketMode: slack.socket_mode,
    ...(slack.app_token !== undefined ? { appToken: slack.app_token } : {}),
    ...(slack.api_url !== undefined ? { apiUrl: slack.api_url } : {}),
    ...(slack.channel !== undefined ? { channel: slack.channel } : {}),
    routing: slack.routing,
    matchByEmail: slack.match_by_email,
    ...(slack.team_id !== undefined ? { teamId: slack.team_id } : {}),
    ...(slack.console_url !== undefined ? { consoleUrl: slack.console_url } : {}),
    people,
    owners: slack.owner_user_ids,
  };
}

function webhookSecret(
  hook: WritConfig["webhooks"][number],
  index: number,
  env: NodeJS.ProcessEnv,
): string {
  let secret: string | undefined;
  let key: string;
  if (hook.secret_env !== undefined) {
    key = `webhooks.${index}.secret_env`;
    secret = readSecretEnv(hook.secret_env, key, env);
  } else {
    key = `webhooks.${index}.secret_file`;
    secret = readSecretFileSync(hook.secret_file as string, key);
  }
  if (secret.length < MIN_WEBHOOK_SECRET) {
    throw new ConfigError(
      `${key}: the secret must be at least ${MIN_WEBHOOK_SECRET} characters (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  return secret;
}

/**
 * A URL given under `key`, or by reference as a secret (`<key>_env`,
 * `<key>_file`). One read that way is checked here, and a bad one is named by
 * its key alone: it may carry the signature or the code that lets anyone post.
 */
function referencedUrl(
  source: { url?: string | undefined; env?: string | undefined; file?: string | undefined },
  key: string,
  env: NodeJS.ProcessEnv,
): string {
  if (source.url !== undefined) return source.url;
  const where = source.env !== undefined ? `${key}_env (${source.env})` : `${key}_file`;
  const url =
    source.env !== undefined
      ? readSecretEnv(source.env, `${key}_env`, env)
      : readSecretFileSync(source.file as string, where);
  const checked = serviceUrl.safeParse(url);
  if (!checked.success) {
    throw new ConfigError(`${where}: ${checked.error.issues[0]?.message ?? "not a URL"}`);
  }
  return url;
}

/** The Teams settings, the webhook URL read from the variable or the file the configuration names. */
function teamsSettings(
  teams: NonNullable<WritConfig["teams"]>,
  env: NodeJS.ProcessEnv,
): { webhookUrl: string; consoleUrl: string } {
  const webhookUrl = referencedUrl(
    { url: teams.webhook_url, env: teams.webhook_url_env, file: teams.webhook_url_file },
    "teams.webhook_url",
    env,
  );
  return { webhookUrl, consoleUrl: teams.console_url };
}

/** The key a webhook's URL was given under, to name it in a refusal without quoting it. */
function webhookUrlKey(hook: WritConfig["webhooks"][number], index: number): string {
  const form =
    hook.url_env !== undefined ? "url_env" : hook.url_file !== undefined ? "url_file" : "url";
  return `webhooks.${index}.${form}`;
}

/**
 * The webhooks, URLs and secrets read and checked. Each webhook's delivery
 * position and lease are named after its `name`, or else after its URL: two
 * entries with one name or one URL would share them, and each would skip what
 * the other saved past.
 */
function webhookSettings(
  webhooks: WritConfig["webhooks"],
  env: NodeJS.ProcessEnv,
): NotificationSettings["webhooks"] {
  const firstNamed = new Map<string, number>();
  webhooks.forEach((hook, index) => {
    if (hook.name === undefined) return;
    const first = firstNamed.get(hook.name);
    if (first !== undefined) {
      throw new ConfigError(
        `webhooks.${index}.name: the same name as webhooks.${first}; give each webhook its own`,
      );
    }
    firstNamed.set(hook.name, index);
  });
  const urls = webhooks.map((hook, index) =>
    referencedUrl(
      { url: hook.url, env: hook.url_env, file: hook.url_file },
      `webhooks.${index}.url`,
      env,
    ),
  );
  const firstIndex = new Map<string, number>();
  webhooks.forEach((hook, index) => {
    const url = urls[index] as string;
    const first = firstIndex.get(url);
    if (first !== undefined) {
      throw new ConfigError(
        `${webhookUrlKey(hook, index)}: the same URL as webhooks.${first}; use one entry per URL and list every event type it should get in its events`,
      );
    }
    firstIndex.set(url, index);
  });
  return webhooks.map((hook, index) => ({
    ...(hook.name !== undefined ? { name: hook.name } : {}),
    url: urls[index] as string,
    secret: webhookSecret(hook, index, env),
    ...(hook.events !== undefined ? { events: hook.events } : {}),
  }));
}

/**
 * Everything the notification channels need, checked: Slack refuses to start
 * without its secrets (naming the key), one Slack account maps to at most one
 * reviewer, webhook secrets and URLs and the Teams URL are read and checked,
 * one webhook per name and per URL. `slackUserIds` adds links for reviewers
 * that are not in the configuration (the demo ones in `writ dev`).
 */
export function resolveNotificationSettings(
  config: WritConfig,
  options: {
    principals?: readonly Principal[];
    slackUserIds?: Readonly<Record<string, string>>;
    env?: NodeJS.ProcessEnv;
  } = {},
): NotificationSettings {
  const env = options.env ?? process.env;
  const slack = slackSettings(config, options.principals ?? [], options.slackUserIds ?? {});
  const { notifications } = config;
  if (notifications.retry.max_ms < notifications.retry.initial_ms) {
    throw new ConfigError("notifications.retry.max_ms: must be at least initial_ms");
  }
  return {
    ...(slack !== undefined ? { slack } : {}),
    ...(config.teams !== undefined ? { teams: teamsSettings(config.teams, env) } : {}),
    webhooks: webhookSettings(config.webhooks, env),
    message: notifications.ticket_url !== undefined ? { ticketUrl: notifications.ticket_url } : {},
    retry: { initialMs: notifications.retry.initial_ms, maxMs: notifications.retry.max_ms },
  };
}
