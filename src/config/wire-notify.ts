import { randomBytes } from "node:crypto";
import { createMemoryNotificationState } from "../adapters/notification-state-memory.js";
import type { Principal } from "../domain/principal.js";
import { createNotifications, type Notifications } from "../notify/setup.js";
import type { Clock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { BrokerDeps } from "../service/deps.js";
import { resolveNotificationSettings } from "./notify-config.js";
import type { WritConfig } from "./schema.js";

export interface NotifyWiringOptions {
  readonly principals: readonly Principal[];
  /** Slack links of reviewers not in the configuration (the demo ones in `writ dev`). */
  readonly slackUserIds?: Readonly<Record<string, string>>;
  /**
   * Where message ids, worker cursors and seen payloads are kept. Replicas
   * sharing Redis must share this too (`createRedisNotificationState`); by
   * default it lives in this process.
   */
  readonly state?: NotificationState;
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * Checks the notification configuration, before anything is opened: a Slack
 * setup missing its secrets or mapping one Slack account twice stops writ
 * with the key to fix. Returns a function that builds the channels once the
 * broker exists.
 */
export function prepareNotifications(config: WritConfig, options: NotifyWiringOptions) {
  const settings = resolveNotificationSettings(config, {
    principals: options.principals,
    ...(options.slackUserIds !== undefined ? { slackUserIds: options.slackUserIds } : {}),
  });
  const state = options.state ?? createMemoryNotificationState({ clock: options.clock });
  return (deps: BrokerDeps): Promise<Notifications> =>
    createNotifications({
      settings,
      deps,
      state,
      clock: options.clock,
      logger: options.logger,
      holder: `writ-${process.pid}-${randomBytes(6).toString("hex")}`,
    });
}
