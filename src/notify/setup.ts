import type { OpenAPIHono } from "@hono/zod-openapi";
import type { App } from "@slack/bolt";
import type { EventType } from "../domain/events.js";
import type { AuthEnv } from "../http/auth.js";
import type { Clock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { BrokerDeps } from "../service/deps.js";
import { type PromptDelivery, recordNotificationSent } from "../service/record-notification.js";
import type { DeliveryChannel, PromptRecorder } from "./channel.js";
import type { MessageOptions } from "./message.js";
import { createSlackDirectory, type SlackPerson } from "./slack/directory.js";
import type { SlackRoute } from "./slack/notifier.js";
import { HonoSlackReceiver } from "./slack/receiver.js";
import { createTeamsNotifier } from "./teams/notifier.js";
import { createWebhookNotifier, webhookName } from "./webhook/notifier.js";
import { type NotificationWorker, type RetryPolicy, startNotificationWorker } from "./worker.js";

/** Slack, resolved from configuration and environment. */
export interface SlackSettings {
  /** Required unless `socketMode`: inbound payloads are verified with it. */
  readonly signingSecret?: string;
  readonly botToken: string;
  readonly socketMode: boolean;
  readonly appToken?: string;
  readonly apiUrl?: string;
  readonly channel?: string;
  readonly routing: Readonly<Record<string, SlackRoute>>;
  readonly matchByEmail: boolean;
  readonly teamId?: string;
  readonly consoleUrl?: string;
  /** Reviewers with their groups and Slack links. */
  readonly people: readonly SlackPerson[];
  /** Slack ids of owners who are not reviewers (decision DMs only). */
  readonly owners: Readonly<Record<string, string>>;
}

export interface NotificationSettings {
  readonly slack?: SlackSettings;
  readonly teams?: { readonly webhookUrl: string; readonly consoleUrl: string };
  readonly webhooks: readonly {
    /** Names the webhook's delivery position and records; else they are named after its URL. */
    readonly name?: string;
    readonly url: string;
    readonly secret: string;
    readonly events?: readonly EventType[];
  }[];
  readonly message: MessageOptions;
  readonly retry: RetryPolicy;
}

export interface NotificationsOptions {
  readonly settings: NotificationSettings;
  readonly deps: BrokerDeps;
  readonly state: NotificationState;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This replica's id, for the workers' leases. */
  readonly holder: string;
  /** Overrides for tests: how long the receiver waits for a listener's ack. */
  readonly ackTimeoutMs?: number;
}

export interface Notifications {
  /** Routes to serve (the Slack receiver), for `createApp`'s `extraRoutes`. */
  readonly routes: readonly ((app: OpenAPIHono<AuthEnv>) => void)[];
  /** Starts the delivery workers (and Socket Mode). */
  start(): void;
  /** The workers, by channel name. */
  readonly workers: ReadonlyMap<string, NotificationWorker>;
  close(): Promise<void>;
}

/** Slack's Web API client wants its base URL to end with a slash. */
function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

/**
 * Assembles the configured channels: one delivery worker per channel following
 * the event stream, and for Slack the Bolt app with its receiver (HTTP) or
 * Socket Mode connection. Bolt is loaded only when Slack is configured, so
 * every other start (and every CLI command) skips its cost.
 */
export async function createNotifications(options: NotificationsOptions): Promise<Notifications> {
  const { settings, deps, state, clock, logger } = options;
  const channels: DeliveryChannel[] = [];
  const routes: ((app: OpenAPIHono<AuthEnv>) => void)[] = [];
  let slackApp: App | undefined;
  const slack = settings.slack;
  /**
   * `notification.sent` through the store and the audit log, like every event;
   * the claim in the shared state keeps two replicas from both recording it.
   */
  const recordPrompt =
    (channel: PromptDelivery["channel"], webhook?: string): PromptRecorder =>
    (requestId, sent) =>
      recordNotificationSent(
        deps,
        {
          requestId,
          channel,
          ...sent,
          ...(webhook !== undefined ? { webhook } : {}),
        },
        { state, holder: options.holder },
      );
  if (slack !== undefined) {
    const [{ webApi }, { createSlackApp }, { createSlackNotifier }] = await Promise.all([
      import("@slack/bolt"),
      import("./slack/interactions.js"),
      import("./slack/notifier.js"),
    ]);
    const apiUrl = slack.apiUrl === undefined ? undefined : withSlash(slack.apiUrl);
    const directory = createSlackDirectory(slack.people, slack.owners);
    let receiver: HonoSlackReceiver | undefined;
    if (!slack.socketMode) {
      if (slack.signingSecret === undefined) {
        throw new TypeError("Slack over HTTP needs a signing secret");
      }
      receiver = new HonoSlackReceiver({
        signingSecret: slack.signingSecret,
        state,
        clock,
        logger,
        ...(options.ackTimeoutMs !== undefined ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
      });
      const mounted = receiver;
      routes.push((app) => mounted.mount(app));
    }
    slackApp = createSlackApp({
      deps,
      botToken: slack.botToken,
      directory,
      state,
      logger,
      ...(apiUrl !== undefined ? { apiUrl } : {}),
      matchByEmail: slack.matchByEmail,
      ...(slack.teamId !== undefined ? { teamId: slack.teamId } : {}),
      message: settings.message,
      ...(receiver !== undefined ? { receiver } : {}),
      ...(slack.appToken !== undefined ? { appToken: slack.appToken } : {}),
    });
    const client = new webApi.WebClient(slack.botToken, {
      ...(apiUrl !== undefined ? { slackApiUrl: apiUrl } : {}),
      // The worker retries with its own backoff, from the stream: the client must not
      // sit on a rate limit or a retry loop of its own while holding the event.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: 10_000,
      logger: {
        debug() {},
        info() {},
        warn: (...msg: unknown[]) =>
          logger.warn(`slack: ${msg.map(String).join(" ").slice(0, 300)}`),
        error: (...msg: unknown[]) =>
          logger.error(`slack: ${msg.map(String).join(" ").slice(0, 300)}`),
        setLevel() {},
        getLevel: () => webApi.LogLevel.INFO,
        setName() {},
      },
    });
    channels.push(
      createSlackNotifier({
        client,
        store: deps.store,
        state,
        directory,
        clock,
        routing: slack.routing,
        ...(slack.channel !== undefined ? { defaultChannel: slack.channel } : {}),
        render: {
          ...(slack.consoleUrl !== undefined ? { consoleUrl: slack.consoleUrl } : {}),
          slackUserOf: directory.slackUserOf,
        },
        message: settings.message,
        logger,
        recordPrompt: recordPrompt("slack"),
      }),
    );
  }
  if (settings.teams !== undefined) {
    channels.push(
      createTeamsNotifier({
        webhookUrl: settings.teams.webhookUrl,
        consoleUrl: settings.teams.consoleUrl,
        store: deps.store,
        state,
        clock,
        message: settings.message,
        recordPrompt: recordPrompt("teams"),
      }),
    );
  }
  for (const hook of settings.webhooks) {
    channels.push(
      createWebhookNotifier({
        ...(hook.name !== undefined ? { name: hook.name } : {}),
        url: hook.url,
        secret: hook.secret,
        ...(hook.events !== undefined ? { events: hook.events } : {}),
        store: deps.store,
        clock,
        message: settings.message,
        recordPrompt: recordPrompt(
          "webhook",
          hook.name ?? webhookName(hook.url).slice("webhook:".length),
        ),
      }),
    );
  }

  const workers = new Map<string, NotificationWorker>();
  let started = false;
  return {
    routes,
    workers,
    start() {
      if (started) return;
      started = true;
      for (const channel of channels) {
        workers.set(
          channel.name,
          startNotificationWorker({
            channel,
            store: deps.store,
            state,
            clock,
            logger,
            holder: options.holder,
            retry: settings.retry,
            ...(deps.timer !== undefined ? { timer: deps.timer } : {}),
          }),
        );
      }
      if (slack?.socketMode === true && slackApp !== undefined) {
        slackApp.start().catch((error: unknown) => {
          logger.error("slack socket mode could not connect", {
            error: (error as Error).message.slice(0, 300),
          });
        });
      }
    },
    async close() {
      await Promise.all([...workers.values()].map((w) => w.stop()));
      if (slack?.socketMode === true && slackApp !== undefined) {
        await slackApp.stop().catch(() => undefined);
      }
    },
  };
}
