import { createHash } from "node:crypto";
import type { EventType } from "../../domain/events.js";
import type { Clock } from "../../ports/clock.js";
import type { RequestStore } from "../../ports/store.js";
import { type DeliveryChannel, type PromptRecorder, postJson } from "../channel.js";
import { buildReviewMessage, type MessageOptions } from "../message.js";
import { SIGNATURE_HEADER, signWebhook, webhookPayload } from "./payload.js";

export interface WebhookNotifierOptions {
  /**
   * The webhook's configured name: its worker's position and lease follow it
   * when the URL changes. Without it, they are named after the URL.
   */
  readonly name?: string;
  readonly url: string;
  readonly secret: string;
  /** Only these event types; every type when absent. */
  readonly events?: readonly EventType[];
  readonly store: Pick<RequestStore, "get">;
  readonly clock: Clock;
  readonly message: MessageOptions;
  /**
   * Records `notification.sent` once this endpoint took the `request.decided`
   * event of a request that needs approval: for a pager or a ticket system,
   * that event is the prompt.
   */
  readonly recordPrompt?: PromptRecorder;
}

/**
 * An unnamed webhook's name, `webhook:<16 hex>`: its worker's cursor key and, in
 * `notification.sent`, how the record tells webhooks apart. Named after its
 * URL, hashed, so neither carries a secret a URL may hold; so a new URL is a
 * new webhook, unless the configuration names it.
 */
export function webhookName(url: string): string {
  return `webhook:${createHash("sha256").update(url).digest("hex").slice(0, 16)}`;
}

/**
 * POSTs every event (or the configured types) as signed JSON, for PagerDuty,
 * ticketing or a SIEM. Delivery is at least once, in stream order; receivers
 * deduplicate on the event `id` (also in `X-Writ-Event-Id`).
 */
export function createWebhookNotifier(options: WebhookNotifierOptions): DeliveryChannel {
  const { store, clock } = options;
  const types = options.events === undefined ? undefined : new Set<string>(options.events);
  const byUrl = webhookName(options.url);
  return {
    // A named webhook was keyed by its URL before it had a name (or before this
    // version): its worker resumes from there rather than starting over.
    ...(options.name !== undefined
      ? { name: `webhook:${options.name}`, formerName: byUrl }
      : { name: byUrl }),
    wants: (event) => types === undefined || types.has(event.type),
    async deliver(event, signal) {
      const request = await store.get(event.requestId);
      const message =
        request === undefined
          ? undefined
          : buildReviewMessage(request, [], clock.now(), options.message);
      const body = JSON.stringify(webhookPayload(event, message));
      const unix = Math.floor(clock.now() / 1000);
      await postJson(
        options.url,
        body,
        {
          [SIGNATURE_HEADER]: signWebhook(options.secret, unix, body),
          "X-Writ-Event-Id": event.id,
          "X-Writ-Event-Type": event.type,
          "User-Agent": "writ-webhook/1",
        },
        { signal, clock },
      );
      if (event.type === "request.decided" && request?.decision.effect === "approve") {
        await options.recordPrompt?.(request.id, { target: "endpoint", destinations: 1 });
      }
    },
  };
}
