import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { App, Receiver, ReceiverEvent } from "@slack/bolt";
import type { Context, Env, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { nestsWithin } from "../../domain/json.js";
import type { Clock } from "../../ports/clock.js";
import type { Logger } from "../../ports/logger.js";
import type { NotificationState } from "../../ports/notification-state.js";

export interface SlackReceiverOptions {
  readonly signingSecret: string;
  /** Remembers payloads already handled (replays, Slack's retries); shared by replicas with Redis. */
  readonly state: NotificationState;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Largest accepted body (default 256 KiB; block actions carry the whole message). */
  readonly maxBodyBytes?: number;
  /** When to answer Slack if no listener has acknowledged yet (default 2,500 ms; Slack waits 3 s). */
  readonly ackTimeoutMs?: number;
}

/** Slack's tolerance for the request timestamp: five minutes either way. */
export const SLACK_TIMESTAMP_TOLERANCE_SECONDS = 300;

/**
 * How long a handled payload is remembered. A replay must carry a timestamp
 * within five minutes of now, and the first copy was within five minutes of
 * that timestamp, so ten minutes covers every replay that could still verify.
 */
const SEEN_MEMORY_MS = 2 * SLACK_TIMESTAMP_TOLERANCE_SECONDS * 1000;

const PAYLOAD_TYPES = new Set(["block_actions", "view_submission", "view_closed"]);
const MAX_DEPTH = 32;

/** Why a Slack request was refused before any listener saw it. */
export type SlackRejection = "missing_headers" | "stale_timestamp" | "bad_signature";

/**
 * Checks Slack's request signature: `v0=` + hex HMAC-SHA256 of
 * `v0:<timestamp>:<raw body>` under the signing secret, compared in constant
 * time, with the timestamp within five minutes of `nowMs`.
 */
export function verifySlackSignature(args: {
  signingSecret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: string;
  nowMs: number;
}): SlackRejection | undefined {
  const { timestamp, signature } = args;
  if (timestamp === undefined || signature === undefined) return "missing_headers";
  if (!/^\d{1,12}$/.test(timestamp)) return "stale_timestamp";
  if (Math.abs(args.nowMs / 1000 - Number(timestamp)) > SLACK_TIMESTAMP_TOLERANCE_SECONDS) {
    return "stale_timestamp";
  }
  const expected = Buffer.from(
    `v0=${createHmac("sha256", args.signingSecret).update(`v0:${timestamp}:${args.rawBody}`).digest("hex")}`,
  );
  const presented = Buffer.from(signature);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    return "bad_signature";
  }
  return undefined;
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function parseJson(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return nestsWithin(value, MAX_DEPTH) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Bolt receiver served by writ's own Hono app at `/slack/events`. It reads
 * the raw body once, verifies Slack's signature and timestamp (on the injected
 * clock), refuses a payload it has already handled (a replay; Slack's own
 * retries, flagged by `X-Slack-Retry-Num`, get a plain 200 and change
 * nothing), answers `url_verification`, and hands the rest to Bolt, answering
 * Slack as soon as a listener acknowledges; listeners do their slower work
 * after that.
 */
export class HonoSlackReceiver implements Receiver {
  private app: App | undefined;
  private readonly options: SlackReceiverOptions;

  constructor(options: SlackReceiverOptions) {
    this.options = options;
  }

  init(app: App): void {
    this.app = app;
  }

  // The HTTP server is writ's; there is nothing of the receiver's own to start or stop.
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  /** Mounts `POST /slack/events` on `app`. */
  mount<E extends Env>(app: Hono<E>, path = "/slack/events"): void {
    app.post(
      path,
      bodyLimit({
        maxSize: this.options.maxBodyBytes ?? 256 * 1024,
        onError: (c) =>
          c.json(errorBody("payload_too_large", "The request body is too large."), 413),
      }),
      (c) => this.handle(c),
    );
  }

  async handle(c: Context): Promise<Response> {
    const { logger } = this.options;
    const rawBody = await c.req.text();
    const rejection = verifySlackSignature({
      signingSecret: this.options.signingSecret,
      timestamp: c.req.header("x-slack-request-timestamp"),
      signature: c.req.header("x-slack-signature"),
      rawBody,
      nowMs: this.options.clock.now(),
    });
    if (rejection !== undefined) {
      logger.warn("slack request rejected", { reason: rejection });
      return c.json(errorBody("unauthenticated", "The Slack signature is not valid."), 401);
    }
    const retryHeader = c.req.header("x-slack-retry-num");
    const digest = createHash("sha256").update(rawBody).digest("hex");
    let first: boolean;
    try {
      first = await this.options.state.firstSeen(`slack:body:${digest}`, SEEN_MEMORY_MS);
    } catch {
      // Without the replay memory a payload could be acted on twice: refuse, Slack retries.
      return c.json(errorBody("store_unavailable", "Try again later."), 503);
    }
    if (!first) {
      if (retryHeader !== undefined) return c.body(null, 200);
      logger.warn("slack payload replay refused");
      return c.json(errorBody("unauthenticated", "This payload was already received."), 401);
    }

    const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    let body: unknown;
    if (type === "application/x-www-form-urlencoded") {
      const form = new URLSearchParams(rawBody);
      if (form.get("ssl_check") === "1") return c.body(null, 200);
      const payload = form.get("payload");
      body = payload === null ? undefined : parseJson(payload);
    } else if (type === "application/json") {
      body = parseJson(rawBody);
    } else {
      return c.json(errorBody("unsupported_media_type", "Unsupported content type."), 415);
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return c.json(errorBody("bad_request", "The Slack payload could not be read."), 400);
    }
    const record = body as Record<string, unknown>;
    if (record.type === "url_verification") {
      const challenge = record.challenge;
      if (typeof challenge !== "string" || !/^[\x21-\x7e]{1,256}$/.test(challenge)) {
        return c.json(errorBody("bad_request", "Bad challenge."), 400);
      }
      return c.json({ challenge }, 200);
    }
    const isEvent = type === "application/json" && record.type === "event_callback";
    const isInteraction =
      type === "application/x-www-form-urlencoded" && PAYLOAD_TYPES.has(String(record.type));
    if (!isEvent && !isInteraction) {
      return c.json(errorBody("bad_request", "This Slack payload type is not handled."), 400);
    }
    return this.dispatch(c, record, retryHeader, c.req.header("x-slack-retry-reason"));
  }

  private async dispatch(
    c: Context,
    body: Record<string, unknown>,
    retryHeader: string | undefined,
    retryReason: string | undefined,
  ): Promise<Response> {
    const app = this.app;
    if (app === undefined) throw new TypeError("HonoSlackReceiver used before Bolt initialized it");
    let answer: (response: unknown) => void = () => {};
    const acked = new Promise<unknown>((resolve) => {
      answer = resolve;
    });
    let done = false;
    const event: ReceiverEvent = {
      body,
      ack: async (response?: unknown) => {
        if (done) return;
        done = true;
        answer(response);
      },
      ...(retryHeader !== undefined && /^\d{1,3}$/.test(retryHeader)
        ? { retryNum: Number(retryHeader) }
        : {}),
      ...(retryReason !== undefined ? { retryReason: retryReason.slice(0, 64) } : {}),
    };
    app.processEvent(event).catch((error: unknown) => {
      this.options.logger.error("slack event processing failed", {
        error: (error as Error).message.slice(0, 300),
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.options.ackTimeoutMs ?? 2500);
    });
    const response = await Promise.race([acked, timeout]);
    clearTimeout(timer);
    done = true;
    if (response === undefined || response === null || response === "") return c.body(null, 200);
    if (typeof response === "string") return c.text(response, 200);
    return c.json(response as object, 200);
  }
}
