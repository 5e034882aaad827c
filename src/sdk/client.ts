import type { z } from "zod";
import type { EventType } from "../domain/events.js";
import type { RequestStatus } from "../domain/request.js";
import type {
  ConsumeView,
  CreateRequestBody,
  CredentialView,
  EventList,
  EventView,
  RequestView,
} from "../http/schemas.js";
import { isWritApiError, WritApiError } from "./errors.js";

export type { ClientErrorCode, WritErrorCode } from "./errors.js";
export { isWritApiError, WritApiError } from "./errors.js";

// Only types come from the server's schemas, so the client never loads the server.
// Objects that travel on the wire keep the API's snake_case names (as in
// /openapi.json); options that only steer the client are camelCase.

/** A request as the API shows it. Masked context fields read `•••` for reviewers. */
export type WritRequest = z.infer<typeof RequestView>;

/** What an agent asks for: `POST /v1/requests`. */
export type CreateRequestInput = z.input<typeof CreateRequestBody>;

/** A minted credential, returned once: a JWT or an AWS STS session. */
export type WritCredential = z.infer<typeof CredentialView>["credential"];

/** The grant of a token consumed for the first time. */
export type ConsumeResult = z.infer<typeof ConsumeView>;

export type WritEvent = z.infer<typeof EventView>;

/**
 * A page of events. While it has `next`, pass it as `after` to read on, even
 * when `items` is short or empty: a filter by `type`, `since` or `until` scans
 * the stream in bounded steps, and `next` says how far one got. No `next`: the
 * read reached the end of the stream.
 */
export type EventPage = z.infer<typeof EventList>;

/** A page of requests, newest first; pass `next` as `cursor` to read on. */
export interface RequestPage {
  items: WritRequest[];
  next?: string;
}

export interface ListRequestsQuery {
  /** Not combined with `awaiting`. */
  status?: RequestStatus;
  /** `review_after`: issued requests waiting for their review after the fact. */
  awaiting?: "review_after";
  /** An agent id. */
  agent?: string;
  action?: string;
  /** ISO 8601: only requests created at or after. */
  since?: string;
  /** ISO 8601: only requests created before. */
  until?: string;
  /** 1–500, default 50. */
  limit?: number;
  cursor?: string;
}

export interface ListEventsQuery {
  request_id?: string;
  type?: EventType;
  /** An event id: only events after it. */
  after?: string;
  /** ISO 8601: only events at or after. */
  since?: string;
  /** ISO 8601: only events before. */
  until?: string;
  /** Long-poll: when nothing matches yet, wait up to this many seconds (0–60). */
  wait?: number;
  /** 1–1000, default 100. */
  limit?: number;
}

export interface GetRequestOptions {
  /** Long-poll: answer as soon as the status changes, or after this many seconds (0–60). */
  waitSeconds?: number;
  /**
   * With `waitSeconds`: keep waiting while the status is this one (default: the
   * status when the server gets the call). Pass the status you last saw so a change
   * between two polls is never missed.
   */
  whileStatus?: RequestStatus;
  signal?: AbortSignal;
}

export interface WaitForDecisionOptions {
  /** Give up (code `wait_timeout`) after this long. `Infinity` waits for the request's own deadline. */
  timeoutMs: number;
  /** Aborting rejects with the signal's reason, as `fetch` does. */
  signal?: AbortSignal;
  /** Called with the request after every poll, e.g. to show approvals so far. */
  onPoll?: (request: WritRequest) => void;
}

/**
 * Returns a bearer token for the next call, e.g. a workload-identity (OIDC)
 * token from the platform. A JWT with an `exp` claim is reused until shortly
 * before it expires; anything else is asked for on every call.
 */
export type TokenProvider = (context: { signal?: AbortSignal }) => string | Promise<string>;

interface WritClientBaseOptions {
  /** The writ server, e.g. `https://writ.example.com` (http or https; a path prefix is kept). */
  url: string | URL;
  /** A `fetch` to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
}

/** A client authenticates with a static writ key or with tokens from a provider, not both. */
export type WritClientOptions = WritClientBaseOptions &
  (
    | {
        /** The caller's writ key (agent, reviewer, auditor or resource server). Sent only as a bearer token. */
        key: string;
        tokenProvider?: undefined;
      }
    | {
        key?: undefined;
        /** Supplies bearer tokens (e.g. OIDC) instead of a static key. */
        tokenProvider: TokenProvider;
      }
  );

/**
 * A typed client for the writ v1 API. Every method rejects with a
 * {@link WritApiError} (or, when a caller's signal aborts, with its reason;
 * for misuse, such as input that cannot be sent as JSON, with a `TypeError`).
 */
export interface WritClient {
  /** The server's base URL, normalized (always ends in `/`). */
  readonly url: string;
  /** Asks for a credential (agents). Policy denials reject with `policy_denied`. */
  request(input: CreateRequestInput): Promise<WritRequest>;
  /** Reads a request; with `waitSeconds`, waits for its status to change. */
  get(id: string, options?: GetRequestOptions): Promise<WritRequest>;
  /**
   * Resolves with the request once its status is no longer `pending`, by
   * long-polls of at most 60 s each.
   */
  waitForDecision(id: string, options: WaitForDecisionOptions): Promise<WritRequest>;
  /** Lists requests, newest first (reviewers, auditors). */
  list(query?: ListRequestsQuery): Promise<RequestPage>;
  /** Approves (reviewers in a group the policy names; never the agent's owner). */
  approve(id: string, comment?: string): Promise<WritRequest>;
  /**
   * Denies with a reason; one deny ends the request. A reviewer who approved
   * may still deny while it is pending.
   */
  deny(id: string, reason: string): Promise<WritRequest>;
  /**
   * Reviews an issued request after the fact (members of its `@review_after`
   * groups; never the agent's owner): `ok`, or a `concern` with a note saying
   * what is wrong. The first review closes it; a later one rejects with
   * `already_reviewed_after`. A concern revokes nothing.
   */
  reviewAfter(id: string, verdict: "ok" | "concern", note?: string): Promise<WritRequest>;
  /**
   * Ends an issued, unused credential now, or an approved request before it is
   * collected, with a reason (reviewers, auditors). Other statuses reject with
   * `not_revocable`; a source that cannot be reached (an AWS session), with
   * `revocation_unavailable`, the credential still issued.
   */
  revoke(id: string, reason: string): Promise<WritRequest>;
  /**
   * Withdraws a pending or uncollected request (the requesting agent).
   * Aborting `signal` rejects with its reason; the request may then have been
   * cancelled or not.
   */
  cancel(id: string, options?: { signal?: AbortSignal }): Promise<WritRequest>;
  /**
   * Reports the action done (the requesting agent): an unused credential ends
   * now; a used one stays used and the report is recorded. Repeating it is fine.
   * Aborting `signal` rejects with its reason; the report may then have landed or not.
   */
  complete(id: string, options?: { signal?: AbortSignal }): Promise<WritRequest>;
  /** Mints and returns the credential of an approved request, once (the requesting agent). */
  collectCredential(id: string): Promise<WritCredential>;
  /**
   * Consumes a writ JWT once (resource servers); a replay rejects with
   * `token_replayed`. Aborting `signal` rejects with its reason; the token may
   * then have been consumed or not.
   */
  consume(token: string, options?: { signal?: AbortSignal }): Promise<ConsumeResult>;
  /**
   * Recorded events in stream order (auditors), a page at a time: follow
   * `next` (see `EventPage`). With `wait`, long-polls; `signal` aborts the call.
   */
  events(query?: ListEventsQuery, options?: { signal?: AbortSignal }): Promise<EventPage>;
}

/** The longest long-poll the API accepts, in seconds. */
export const MAX_WAIT_SECONDS = 60;

// Larger delays overflow setTimeout and would fire at once.
const MAX_TIMER_MS = 2_147_483_647;
// Long enough for a workload-identity JWT passed as the key.
const KEY_FORMAT = /^[\x21-\x7e]{1,8192}$/;
/** A provider's JWT is asked for again this long before its `exp`. */
const TOKEN_REFRESH_MARGIN_MS = 60_000;

type Query = Readonly<Record<string, string | number | undefined>>;

interface Call {
  method: "GET" | "POST";
  path: string;
  query?: Query;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

function baseUrl(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError("url must be an absolute http or https URL, e.g. http://127.0.0.1:8787");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`url must use http or https, not ${url.protocol}`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError("url must not contain a user name or password; pass the key as `key`");
  }
  if (url.search !== "" || url.hash !== "") {
    throw new TypeError("url must not have a query or fragment");
  }
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url;
}

function requestId(id: string): string {
  // "." and ".." survive encoding and would be resolved away as path segments,
  // sending the call to another route.
  if (typeof id !== "string" || id === "" || id === "." || id === "..") {
    throw new TypeError("id must be a request id");
  }
  return encodeURIComponent(id);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorBody(
  value: unknown,
): { code: string; message: string; details?: unknown } | undefined {
  if (!isObject(value) || !isObject(value.error)) return undefined;
  const { code, message, details } = value.error;
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  return { code, message, details };
}

/** Why a connection failed, from undici's `cause` chain: `ECONNREFUSED`, a TLS error, … */
function networkReason(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (isObject(cause)) {
    if (typeof cause.code === "string") return cause.code;
    if (typeof cause.message === "string") return cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** When a JWT's `exp` claim says it expires (ms), read without verifying; else undefined. */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined || token.split(".").length !== 3) return undefined;
  try {
    const exp: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bearer for each call: the static key, or the provider's token, reused
 * while it is a JWT not about to expire.
 */
function bearerSource(options: WritClientOptions) {
  const { key, tokenProvider } = options;
  if (key !== undefined && tokenProvider !== undefined) {
    throw new TypeError("give either key or tokenProvider, not both");
  }
  if (tokenProvider !== undefined) {
    if (typeof tokenProvider !== "function")
      throw new TypeError("tokenProvider must be a function");
    let cached: { token: string; refreshAt: number } | undefined;
    return {
      async bearer(signal: AbortSignal | undefined): Promise<{ token: string; fresh: boolean }> {
        if (cached !== undefined && Date.now() < cached.refreshAt) {
          return { token: cached.token, fresh: false };
        }
        cached = undefined;
        let token: unknown;
        try {
          token = await tokenProvider(signal === undefined ? {} : { signal });
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          throw new WritApiError({
            status: 0,
            code: "token_unavailable",
            message: "The token provider failed to supply a token.",
            cause: error,
          });
        }
        if (typeof token !== "string" || !KEY_FORMAT.test(token)) {
          throw new WritApiError({
            status: 0,
            code: "token_unavailable",
            message:
              "The token provider returned something that is not a bearer token (1 to 8192 printable ASCII characters).",
          });
        }
        const expiresAt = jwtExpiry(token);
        if (expiresAt !== undefined) {
          cached = { token, refreshAt: expiresAt - TOKEN_REFRESH_MARGIN_MS };
        }
        return { token, fresh: true };
      },
      /** Forgets a token the server refused, so the next call asks the provider again. */
      refused(token: string) {
        if (cached?.token === token) cached = undefined;
      },
    };
  }
  if (typeof key !== "string" || !KEY_FORMAT.test(key)) {
    // The key itself is never echoed: it may be a secret pasted in the wrong place.
    throw new TypeError("key must be a writ key: 1 to 8192 printable ASCII characters, no spaces");
  }
  return {
    async bearer(): Promise<{ token: string; fresh: boolean }> {
      return { token: key, fresh: true };
    },
    refused(_token: string) {},
  };
}

/** A `retry_after_seconds` detail in ms, within 1-60 s (1 s when absent). */
function retryAfterMs(details: Readonly<Record<string, unknown>> | undefined): number {
  const seconds = details?.retry_after_seconds;
  return typeof seconds === "number" && Number.isFinite(seconds)
    ? Math.min(60, Math.max(1, seconds)) * 1000
    : 1000;
}

// A poll that fails on the way (a proxy's 502/503/504, a replica restarting,
// Redis failing over) is tried again after a pause that doubles up to a cap,
// with jitter so that many waiting agents do not come back in step.
const FIRST_RETRY_PAUSE_MS = 250;
const MAX_RETRY_PAUSE_MS = 5_000;
// With no deadline of the caller's, retries stop this long after the request's
// own approval deadline: by then the server has ended it.
const RETRY_PAST_EXPIRY_MS = 30_000;
// A token provider that fails is asked again this many times in a row, after
// the same pauses: a workload token file the platform is rotating can be
// missing or empty for a moment, but one that stays so will not come back, and
// the wait should end promptly with the provider's error.
const TOKEN_RETRIES = 2;

/** Whether a failed call is worth repeating: nothing reached writ, or it could not answer now. */
function isTransient(error: unknown): boolean {
  return (
    isWritApiError(error) &&
    (error.code === "unreachable" ||
      error.status === 502 ||
      error.status === 503 ||
      error.status === 504)
  );
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Creates a client. Misuse (a bad URL, key or provider) throws `TypeError`. */
export function createWritClient(options: WritClientOptions): WritClient {
  const base = baseUrl(options.url);
  const source = bearerSource(options);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const where = base.href;

  async function call<T>(request: Call): Promise<T> {
    const { token, fresh } = await source.bearer(request.signal);
    try {
      return await send<T>(request, token);
    } catch (error) {
      // A reused provider token the server refuses (rotated, revoked early):
      // ask the provider for a new one and try once more. Nothing ran on a 401.
      if (fresh || !isWritApiError(error) || error.status !== 401) throw error;
      source.refused(token);
      const retry = await source.bearer(request.signal);
      return send<T>(request, retry.token);
    }
  }

  async function send<T>({ method, path, query, body, signal }: Call, token: string): Promise<T> {
    // Belt and braces: no message built here contains the bearer, but a server
    // or a network library could echo it back.
    const redact = (text: string) => text.replaceAll(token, "[redacted]");
    const url = new URL(path, base);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: "application/json",
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    // Serialized before anything is sent: input JSON cannot carry (a BigInt, a
    // cycle, nesting too deep for the serializer) is the caller's mistake, and
    // must not surface as `unreachable`, which reads as worth retrying.
    let json: string | undefined;
    try {
      json = body === undefined ? undefined : JSON.stringify(body);
    } catch (error) {
      throw new TypeError(
        `the call's input cannot be sent as JSON (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    let status = 0;
    let text: string;
    try {
      const response = await fetchImpl(url, {
        method,
        headers,
        // A redirect would resend the key somewhere the caller did not choose.
        redirect: "manual",
        ...(json !== undefined ? { body: json } : {}),
        ...(signal !== undefined ? { signal } : {}),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new WritApiError({
        status: 0,
        code: "unreachable",
        message: redact(`Could not reach writ at ${where} (${networkReason(error)}).`),
        cause: error,
      });
    }

    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = undefined;
    }
    if (status >= 200 && status < 300 && isObject(payload)) return payload as T;
    const error = status >= 400 ? errorBody(payload) : undefined;
    if (error !== undefined) {
      throw new WritApiError({
        status,
        code: error.code,
        message: redact(error.message),
        details: isObject(error.details) ? error.details : undefined,
      });
    }
    const what =
      status >= 300 && status < 400
        ? `a redirect (HTTP ${status}); point the client at the final address`
        : `HTTP ${status} with a body that is not writ's JSON`;
    throw new WritApiError({
      status,
      code: "bad_response",
      message: redact(`writ at ${where} answered ${what}.`),
    });
  }

  function get(id: string, options: GetRequestOptions = {}): Promise<WritRequest> {
    const { waitSeconds, whileStatus, signal } = options;
    if (
      waitSeconds !== undefined &&
      !(Number.isInteger(waitSeconds) && waitSeconds >= 0 && waitSeconds <= MAX_WAIT_SECONDS)
    ) {
      throw new TypeError(`waitSeconds must be a whole number from 0 to ${MAX_WAIT_SECONDS}`);
    }
    return call({
      method: "GET",
      path: `v1/requests/${requestId(id)}`,
      query: { wait: waitSeconds || undefined, while: waitSeconds ? whileStatus : undefined },
      signal,
    });
  }

  async function waitForDecision(
    id: string,
    options: WaitForDecisionOptions,
  ): Promise<WritRequest> {
    const { timeoutMs, signal, onPoll } = options;
    if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0) {
      throw new TypeError("timeoutMs must be a number of milliseconds, 0 or more");
    }
    signal?.throwIfAborted();
    const startedAt = Date.now();
    const deadline = startedAt + timeoutMs;
    const timeout = new AbortController();
    const timer =
      timeoutMs <= MAX_TIMER_MS ? setTimeout(() => timeout.abort(), timeoutMs) : undefined;
    const polling =
      signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal]);
    let last: WritRequest | undefined;
    // The transient failure the polls are riding out, if the latest one failed.
    let failing: unknown;
    let retryPauseMs = FIRST_RETRY_PAUSE_MS;
    let tokenFailures = 0;
    /**
     * One poll; a transient failure is paused on and tried again while time
     * remains, a token provider's failure at most {@link TOKEN_RETRIES} times in a row.
     */
    const poll = async (options: GetRequestOptions): Promise<WritRequest> => {
      for (;;) {
        try {
          const request = await get(id, { ...options, signal: polling });
          failing = undefined;
          retryPauseMs = FIRST_RETRY_PAUSE_MS;
          tokenFailures = 0;
          return request;
        } catch (error) {
          const tokenFailure = isWritApiError(error) && error.code === "token_unavailable";
          if (tokenFailure ? ++tokenFailures > TOKEN_RETRIES : !isTransient(error)) throw error;
          failing = error;
          // Token retries are few by count, so even a wait without a deadline
          // may spend them before its first answer.
          const retryUntil = Number.isFinite(deadline)
            ? deadline
            : last !== undefined
              ? Date.parse(last.expires_at) + RETRY_PAST_EXPIRY_MS
              : tokenFailure
                ? Number.POSITIVE_INFINITY
                : 0;
          const pauseMs = Math.min(
            retryPauseMs * (0.5 + Math.random() / 2),
            retryUntil - Date.now(),
          );
          if (!(pauseMs > 0)) throw error;
          await pauseFor(pauseMs, polling);
          retryPauseMs = Math.min(MAX_RETRY_PAUSE_MS, retryPauseMs * 2);
        }
      }
    };
    try {
      // Each poll waits while the status is `pending`, so a decision that lands
      // between two polls ends the next one at once.
      last = await poll({});
      onPoll?.(last);
      while (last.status === "pending") {
        const remainingMs = deadline - Date.now();
        if (remainingMs <= 0) break;
        const waitSeconds = Math.min(MAX_WAIT_SECONDS, Math.max(1, Math.ceil(remainingMs / 1000)));
        try {
          last = await poll({ waitSeconds, whileStatus: "pending" });
        } catch (error) {
          // This caller holds its share of long-polls (other waits of the same
          // key): pause as told, then poll again.
          if (!isWritApiError(error) || error.code !== "too_many_waits") throw error;
          await pauseFor(retryAfterMs(error.details), polling);
          continue;
        }
        onPoll?.(last);
      }
      if (last.status !== "pending") return last;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!timeout.signal.aborted) throw error;
      // The deadline came while polls were failing: that failure, not a
      // pending status nobody saw, is why the wait ended.
      if (failing !== undefined) throw failing;
    } finally {
      clearTimeout(timer);
    }
    const waited = timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`;
    throw new WritApiError({
      status: 0,
      code: "wait_timeout",
      message: `The request ${id} was still pending when the wait of ${waited} ended.`,
      details: { request_id: id, status: last?.status ?? "pending", timeout_ms: timeoutMs },
    });
  }

  // Every method is async, so misuse rejects like any other failure instead of throwing.
  return {
    url: where,
    request: async (input) => call({ method: "POST", path: "v1/requests", body: input }),
    get: async (id, options) => get(id, options),
    waitForDecision,
    list: async (query = {}) => call({ method: "GET", path: "v1/requests", query: { ...query } }),
    approve: async (id, comment) =>
      call({
        method: "POST",
        path: `v1/requests/${requestId(id)}/approve`,
        body: comment === undefined ? {} : { comment },
      }),
    deny: async (id, reason) =>
      call({ method: "POST", path: `v1/requests/${requestId(id)}/deny`, body: { reason } }),
    reviewAfter: async (id, verdict, note) =>
      call({
        method: "POST",
        path: `v1/requests/${requestId(id)}/review-after`,
        body: { verdict, ...(note !== undefined ? { note } : {}) },
      }),
    revoke: async (id, reason) =>
      call({ method: "POST", path: `v1/requests/${requestId(id)}/revoke`, body: { reason } }),
    cancel: async (id, options = {}) =>
      call({
        method: "POST",
        path: `v1/requests/${requestId(id)}/cancel`,
        signal: options.signal,
      }),
    complete: async (id, options = {}) =>
      call({
        method: "POST",
        path: `v1/requests/${requestId(id)}/complete`,
        signal: options.signal,
      }),
    collectCredential: async (id) => {
      const view = await call<z.infer<typeof CredentialView>>({
        method: "POST",
        path: `v1/requests/${requestId(id)}/credential`,
      });
      return view.credential;
    },
    consume: async (token, options = {}) => {
      if (typeof token !== "string" || token === "") throw new TypeError("token must be a string");
      return call({
        method: "POST",
        path: "v1/tokens/consume",
        body: { token },
        signal: options.signal,
      });
    },
    events: async (query = {}, options = {}) =>
      call({ method: "GET", path: "v1/events", query: { ...query }, signal: options.signal }),
  };
}
