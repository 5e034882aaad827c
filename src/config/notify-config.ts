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
  const anySecret =
    file?.signing_secret ??
    file?.bot_token ??
    file?.app_token ??
    env.SLACK_SIGNING_SECRET ??
    env.SLACK_BOT_TOKEN ??
    env.SLACK_APP_TOKEN;
  if (file === undefined && anySecret === undefined) return config;
  const merged = {
    ...file,
    ...(file?.signing_secret === undefined && env.SLACK_SIGNING_SECRET !== undefined
      ? { signing_secret: env.SLACK_SIGNING_SECRET }
      : {}),
    ...(file?.bot_token === undefined && env.SLACK_BOT_TOKEN !== undefined
      ? { bot_token: env.SLACK_BOT_TOKEN }
      : {}),
    ...(file?.app_token === undefined && env.SLACK_APP_TOKEN !== undefined
      ? { app_token: env.SLACK_APP_TOKEN }
      : {}),
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
 * The Teams settings, the webhook URL read from the variable or the file the
 * configuration names. A URL read that way is checked here, and a bad one is
 * named by its key alone: it carries the signature that lets anyone post to
 * the channel.
 */
function teamsSettings(
  teams: NonNullable<WritConfig["teams"]>,
  env: NodeJS.ProcessEnv,
): { webhookUrl: string; consoleUrl: string } {
  const consoleUrl = teams.console_url;
  if (teams.webhook_url !== undefined) return { webhookUrl: teams.webhook_url, consoleUrl };
  const fromEnv = teams.webhook_url_env;
  const key =
    fromEnv !== undefined ? `teams.webhook_url_env (${fromEnv})` : "teams.webhook_url_file";
  const webhookUrl =
    fromEnv !== undefined
      ? readSecretEnv(fromEnv, "teams.webhook_url_env", env)
      : readSecretFileSync(teams.webhook_url_file as string, key);
  const checked = serviceUrl.safeParse(webhookUrl);
  if (!checked.success) {
    throw new ConfigError(`${key}: ${checked.error.issues[0]?.message ?? "not a URL"}`);
  }
  return { webhookUrl, consoleUrl };
}

/**
 * Everything the notification channels need, checked: Slack refuses to start
 * without its secrets (naming the key), one Slack account maps to at most one
 * reviewer, webhook secrets and the Teams URL are read and checked, one webhook
 * per URL. `slackUserIds` adds links for reviewers that are not in the
 * configuration (the demo ones in `writ dev`).
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
  // A webhook's cursor and delivery lease are named after its URL: two entries
  // with one URL would share them, and each would skip what the other saved past.
  const firstIndex = new Map<string, number>();
  config.webhooks.forEach((hook, index) => {
    const first = firstIndex.get(hook.url);
    if (first !== undefined) {
      throw new ConfigError(
        `webhooks.${index}.url: the same URL as webhooks.${first}; use one entry per URL and list every event type it should get in its events`,
      );
    }
    firstIndex.set(hook.url, index);
  });
  return {
    ...(slack !== undefined ? { slack } : {}),
    ...(config.teams !== undefined ? { teams: teamsSettings(config.teams, env) } : {}),
    webhooks: config.webhooks.map((hook, index) => ({
      url: hook.url,
      secret: webhookSecret(hook, index, env),
      ...(hook.events !== undefined ? { events: hook.events } : {}),
    })),
    message: notifications.ticket_url !== undefined ? { ticketUrl: notifications.ticket_url } : {},
    retry: { initialMs: notifications.retry.initial_ms, maxMs: notifications.retry.max_ms },
  };
}
