import { z } from "zod";
import { EVENT_TYPES } from "../domain/events.js";

/**
 * Configuration of the review channels (Slack, Teams) and signed webhooks. Every
 * field is documented in docs/configuration.md, docs/slack.md, docs/teams.md and
 * docs/webhooks.md.
 */

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * An https URL; plain http only on the loopback interface (a local proxy, tests).
 * Credentials in URLs are refused: they would end up in logs.
 */
export const serviceUrl = z
  .string()
  .max(2048)
  .refine((value) => {
    try {
      const url = new URL(value);
      if (url.username !== "" || url.password !== "") return false;
      return (
        url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
      );
    } catch {
      return false;
    }
  }, "an https:// URL without credentials (http:// only for 127.0.0.1, localhost or [::1])");

/**
 * The console's base address. Links are built as `<console_url>/requests/<id>`,
 * so a query or a fragment would end up before the path and break every link.
 */
export const consoleUrl = serviceUrl.refine(
  (value) => !/[?#]/.test(value),
  "must not have a query (?…) or fragment (#…): links are built as <console_url>/requests/<id>; give the console's address alone, e.g. https://writ.example.com/console",
);

/** The name of an environment variable holding a secret. */
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, "an environment variable name");

const group = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/, "letters, digits and _ . @ + - (at most 128)");

/** A Slack user id, e.g. `U012AB3CD` (`W…` on Enterprise Grid). */
export const slackUserId = z
  .string()
  .regex(/^[UW][A-Z0-9]{2,20}$/, "a Slack user id like U012AB3CD (not a name or an email)");

/** A channel id (`C…`, `G…`) or a channel name (`#approvals`). */
export const slackChannel = z
  .string()
  .regex(
    /^(?:[CG][A-Z0-9]{2,20}|#[a-z0-9][a-z0-9_-]{0,79})$/,
    "a Slack channel id like C012AB3CD or a name like #approvals",
  );

const SlackConfigObject = z.strictObject({
  /** Verifies that inbound payloads come from Slack. Env: SLACK_SIGNING_SECRET. */
  signing_secret: z
    .string()
    .min(16)
    .max(256)
    // Whitespace is never part of one, and a secret kept with it fails every signature check.
    .regex(/^[!-~]+$/, "the app's signing secret, without spaces or line breaks")
    .optional(),
  /** The bot token (`xoxb-…`). Env: SLACK_BOT_TOKEN. */
  bot_token: z
    .string()
    .regex(/^xoxb-[A-Za-z0-9-]{8,250}$/, "a bot token starting with xoxb-")
    .optional(),
  /** Receive interactions over Socket Mode instead of `/slack/events`. */
  socket_mode: z.boolean().default(false),
  /** The app-level token (`xapp-…`) Socket Mode needs. Env: SLACK_APP_TOKEN. */
  app_token: z
    .string()
    .regex(/^xapp-[A-Za-z0-9-]{8,250}$/, "an app-level token starting with xapp-")
    .optional(),
  /** Web API base URL, for proxies and tests. Env: WRIT_SLACK_API_URL. */
  api_url: serviceUrl.optional(),
  /** Where approval messages go for groups without a route. Env: WRIT_SLACK_CHANNEL. */
  channel: slackChannel.optional(),
  /** Per approver group: post to a channel, or DM each member with a Slack user id. */
  routing: z
    .record(
      group,
      z.union([z.strictObject({ channel: slackChannel }), z.strictObject({ dm: z.literal(true) })]),
    )
    .default({}),
  /**
   * Also accept a Slack user whose confirmed Slack email equals a reviewer's
   * configured `email`. Weaker than explicit ids: see docs/slack.md.
   */
  match_by_email: z.boolean().default(false),
  /**
   * Accept interactions from this workspace only (`T…`): the payload's team and
   * the clicking user's home team must both be it. Required with `match_by_email`.
   */
  team_id: z
    .string()
    .regex(/^T[A-Z0-9]{2,20}$/, "a Slack team id like T012AB3CD")
    .optional(),
  /** Base URL of writ's console; messages link to `<console_url>/requests/<id>`. */
  console_url: consoleUrl.optional(),
  /**
   * Slack user ids of agent owners who are not reviewers, for the DM telling them
   * their agent's request was decided. Never lets anyone review: clicks from
   * these accounts on their own agents' requests are refused, and an id here
   * may not be another person's reviewer `slack_user_id`.
   */
  owner_user_ids: z.record(group, slackUserId).default({}),
});

export const SlackConfig = SlackConfigObject.superRefine((slack, ctx) => {
  // An email is unique only within a workspace: with Slack Connect or several
  // workspaces, another workspace's confirmed address could otherwise match.
  if (slack.match_by_email && slack.team_id === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["team_id"],
      message:
        "is required with slack.match_by_email: set it to your workspace's team id (T…), so that users of other workspaces never match a reviewer by email",
    });
  }
});

export const TeamsConfig = z
  .strictObject({
    /**
     * The incoming webhook or Workflows URL of the Teams channel. A secret (a
     * Workflows URL carries its signature): better given by reference, below.
     */
    webhook_url: serviceUrl.optional(),
    /** Name of the environment variable holding the webhook URL. */
    webhook_url_env: envName.optional(),
    /** File holding the webhook URL (e.g. a mounted Kubernetes secret). */
    webhook_url_file: z.string().min(1).optional(),
    /** Base URL of writ's console; cards link to `<console_url>/requests/<id>`. */
    console_url: consoleUrl,
  })
  .refine(
    (t) =>
      [t.webhook_url, t.webhook_url_env, t.webhook_url_file].filter((v) => v !== undefined)
        .length === 1,
    "set exactly one of webhook_url, webhook_url_env and webhook_url_file",
  );

/**
 * A webhook's name: its identity in writ, kept when its URL changes. Sixteen
 * hexadecimal characters are how an unnamed webhook's URL is keyed, so a name
 * of that shape could take another webhook's delivery position.
 */
export const webhookNameSlug = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,39}$/,
    "a short name: lowercase letters, digits, _ and - (at most 40), e.g. siem",
  )
  .refine(
    (value) => !/^[0-9a-f]{16}$/.test(value),
    "must not be 16 hexadecimal characters, the form of the keys of unnamed webhooks",
  );

export const WebhookConfig = z
  .strictObject({
    /**
     * Names the webhook's delivery position, lease and records, so that they
     * follow it when its URL changes; unique among webhooks. Without it, they
     * are named after the URL (hashed).
     */
    name: webhookNameSlug.optional(),
    /** The receiver's URL. May carry a secret (`?code=…`): better given by reference, below. */
    url: serviceUrl.optional(),
    /** Name of the environment variable holding the URL. */
    url_env: envName.optional(),
    /** File holding the URL (e.g. a mounted Kubernetes secret). */
    url_file: z.string().min(1).optional(),
    /** Name of the environment variable holding the signing secret. */
    secret_env: envName.optional(),
    /** File holding the signing secret (e.g. a mounted Kubernetes secret). */
    secret_file: z.string().min(1).optional(),
    /** Only these event types; all when absent. */
    events: z.array(z.enum(EVENT_TYPES)).min(1).optional(),
  })
  .refine(
    (w) => [w.url, w.url_env, w.url_file].filter((v) => v !== undefined).length === 1,
    "set exactly one of url, url_env and url_file",
  )
  .refine(
    (w) => (w.secret_env === undefined) !== (w.secret_file === undefined),
    "set exactly one of secret_env and secret_file",
  );

export const NotificationsConfig = z.strictObject({
  /** Link for tickets, with `{ticket}` where the ticket id goes, e.g. https://jira.example.com/browse/{ticket}. */
  ticket_url: serviceUrl.refine((v) => v.includes("{ticket}"), "must contain {ticket}").optional(),
  /** Delivery retries: the first wait and the cap, in milliseconds. */
  retry: z
    .strictObject({
      initial_ms: z.number().int().min(1).max(60_000).default(1000),
      max_ms: z.number().int().min(1).max(3_600_000).default(300_000),
    })
    .prefault({}),
});

export type SlackConfigInput = z.input<typeof SlackConfig>;
