import type { RecordedEvent } from "../domain/events.js";
import { type Clock, systemClock } from "../ports/clock.js";

/**
 * One destination of notifications (Slack, a Teams channel, one webhook). A
 * worker feeds it the event stream in order, one event at a time, and retries
 * an event until `deliver` succeeds; so `deliver` must be idempotent (posting
 * again what was already posted is avoided with remembered facts, updates are
 * naturally repeatable).
 */
export interface DeliveryChannel {
  /** Stable across restarts: it names the worker's cursor and lease. */
  readonly name: string;
  /**
   * Where the channel's position was kept before it had `name` (a webhook
   * keyed by its URL, then named). A worker with no position under `name`
   * resumes from this one, and the worker keeps both up to date, so that a
   * later change of `name` alone resumes too.
   */
  readonly formerName?: string;
  /** Cheap filter by event type; `deliver` is called only for these. */
  wants(event: RecordedEvent): boolean;
  /**
   * Throws {@link DeliveryError} (or anything) when the event was not delivered.
   * `signal` aborts once this replica lost the worker's lease, so another replica
   * may be delivering the same event: a channel that makes several outside calls
   * checks it before each one and stops (throwing), rather than sending copies
   * alongside the new holder.
   */
  deliver(event: RecordedEvent, signal: AbortSignal): Promise<void>;
}

/**
 * Records, once per request, that a channel delivered its approval prompt
 * (`notification.sent`), so the request's timeline shows when reviewers were
 * told. Kinds and counts (the destinations reached) only; it throws when the
 * record cannot be written, and the worker then retries the delivery (which
 * skips what was posted).
 */
export type PromptRecorder = (
  requestId: string,
  sent: { readonly target: "channel" | "dm" | "endpoint"; readonly destinations: number },
) => Promise<void>;

/**
 * Events about notifying and clicking themselves: chat channels do not show
 * them, and recording them must never prompt another message (no loops).
 * Webhooks still forward them like any other event.
 */
export const NOTIFICATION_SILENT_TYPES: ReadonlySet<string> = new Set([
  "request.created",
  "approval.refused",
  "approval.form_opened",
  "notification.sent",
]);

/** Why a delivery failed, and whether trying again can help. */
export class DeliveryError extends Error {
  override readonly name = "DeliveryError";
  readonly retryable: boolean;
  /** The receiver asked to wait this long (Retry-After), in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { retryable: boolean; retryAfterMs?: number }) {
    super(message);
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * How long a `Retry-After` header asks to wait, in ms: either form HTTP allows
 * (RFC 9110, section 10.2.3), a number of seconds or a date, the date read
 * against `nowMs`. Undefined when absent or unreadable.
 */
function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // Every HTTP date names its day or month; without a name, Date.parse would
  // read stray numbers ("1.5") as dates in 2001.
  const at = /[A-Za-z]{3}/.test(value) ? Date.parse(value) : Number.NaN;
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

/**
 * Classifies an HTTP status of a webhook-style receiver; a `Retry-After` date
 * is read against `nowMs` (the injected clock's time).
 */
export function httpFailure(
  status: number,
  retryAfterHeader: string | null,
  nowMs: number,
): DeliveryError {
  const retryAfter = retryAfterMs(retryAfterHeader, nowMs);
  // A redirect is never followed (the signed body would go where configuration
  // did not send it), yet it is no refusal either: it is often a gateway's
  // maintenance page, so the event waits for the receiver rather than being dropped.
  const redirect = status >= 300 && status < 400;
  const retryable = redirect || status === 408 || status === 425 || status === 429 || status >= 500;
  const detail = redirect ? " (a redirect, not followed)" : "";
  return new DeliveryError(`the receiver answered HTTP ${status}${detail}`, {
    retryable,
    ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
  });
}

export interface PostOptions {
  /** Aborts the call (the worker lost its lease); nothing is sent once it has fired. */
  readonly signal?: AbortSignal;
  /** Time allowed for the whole exchange, response body included, in ms (default 10,000). */
  readonly timeoutMs?: number;
  /** How much of a 2xx response body to read and return, in bytes (default 0: none). */
  readonly responseBytes?: number;
  /** Reads a `Retry-After` date against this clock (default: the system's). */
  readonly clock?: Clock;
}

/**
 * POSTs `body` and throws a {@link DeliveryError} unless the answer is 2xx;
 * returns the start of a 2xx response body when `responseBytes` asks for it.
 * Redirects are not followed (a moved endpoint is a configuration change, not
 * something to follow with signed payloads) and are retried, as a network error
 * or a timeout is. At most `responseBytes` of the response are read, and the rest is
 * discarded unread: a receiver answering slowly or at length must neither hold
 * the worker nor fill writ's memory.
 */
export async function postJson(
  url: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  options: PostOptions = {},
): Promise<string> {
  options.signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      redirect: "manual",
      signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]),
    });
  } catch (error) {
    throw new DeliveryError(`the receiver could not be reached (${(error as Error).name})`, {
      retryable: true,
    });
  }
  const ok = response.status >= 200 && response.status < 300;
  const text = await readPrefix(response, ok ? (options.responseBytes ?? 0) : 0);
  if (!ok) {
    throw httpFailure(
      response.status,
      response.headers.get("retry-after"),
      (options.clock ?? systemClock).now(),
    );
  }
  return text;
}

/** Reads up to `maxBytes` of a response body as UTF-8 and drops the rest unread. */
async function readPrefix(response: Response, maxBytes: number): Promise<string> {
  const stream = response.body;
  if (stream === null) return "";
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // A body cut short (or past the timeout) reads as what arrived.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, maxBytes).toString("utf8");
}
