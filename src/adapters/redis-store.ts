import { awaitsReviewAfter } from "../domain/after-review.js";
import { WritError } from "../domain/errors.js";
import { escalationDueAt } from "../domain/escalation.js";
import { type DomainEvent, NO_REQUEST } from "../domain/events.js";
import { type AccessRequest, isLive, REQUEST_STATUSES } from "../domain/request.js";
import type { Logger } from "../ports/logger.js";
import type { CommitResult, RequestStore, StreamGap } from "../ports/store.js";
import { createChangeFeed } from "./redis/change-feed.js";
import {
  compareStreamIds,
  corrupt,
  decodeEntries,
  decodeRequest,
  eventArgs,
  isStreamId,
} from "./redis/codec.js";
import { errorKind, type RedisStoreConnection } from "./redis/connection.js";
import { withDeadline } from "./redis/deadline.js";
import {
  isListCursor,
  type KeyLayout,
  keyLayout,
  MAX_CREATED_AT,
  timeDigits,
} from "./redis/keys.js";
import {
  readRequestEvents,
  readRequestPage,
  readStreamEvents,
  scanStreamEvents,
} from "./redis/reads.js";
import {
  createStreamRetention,
  type StreamTrimOptions,
  type StreamTrimResult,
} from "./redis/stream-retention.js";

export {
  connectRedis,
  type RedisConnectOptions,
  type RedisSentinelOptions,
  type RedisStoreClient,
  type RedisStoreConnection,
  type RedisTlsOptions,
} from "./redis/connection.js";
export { type RedisStoreScripts, redisStoreScripts } from "./redis/scripts.js";
export type { StreamTrimOptions, StreamTrimResult } from "./redis/stream-retention.js";

export interface RedisStoreOptions {
  /**
   * A connected node-redis client or cluster with `redisStoreScripts`
   * registered (see `connectRedis`). The store uses it but does not own it
   * unless `closeClient` is set.
   */
  client: RedisStoreConnection;
  /**
   * Names writ's keys and is their Cluster hash tag: keys are `{<prefix>}:…`
   * (default "writ"). 1-64 characters of `A-Z a-z 0-9 _ . : -`.
   */
  prefix?: string;
  /** The event stream's key (default `{<prefix>}:events`); it must carry the `{<prefix>}` hash tag. */
  streamKey?: string;
  /**
   * Trim the stream periodically, never past an event that an audit log
   * heard from within the follower timeout has not fsynced (see
   * `recordLogCursor`). Undefined keeps every event.
   */
  streamTrim?: StreamTrimOptions;
  /** How often audit log cursors are written to Redis, and repeated as a heartbeat (default 1,000 ms). */
  followerReportIntervalMs?: number;
  /** Deadline of each store operation; past it the caller gets `store_unavailable` (default 5,000 ms). */
  operationTimeoutMs?: number;
  /** Most concurrent `waitForChange` calls before new ones get `store_unavailable` (default 10,000). */
  maxWaiters?: number;
  /**
   * Most concurrent `waitForEvents` calls of API callers (default 1,000);
   * `internal` ones (this process's audit log and notification workers) are
   * never refused.
   */
  maxStreamWaiters?: number;
  /** Close the client when the store closes: set when the store is its only user. */
  closeClient?: boolean;
  logger: Logger;
}

/** The store port on Redis, with what `writ serve` needs on top. */
export interface RedisStore extends RequestStore {
  /** One round trip to the shard holding writ's keys; resolves with its duration in ms. */
  ping(): Promise<number>;
  /**
   * Records how far an audit log following the stream has fsynced it (its last
   * written event id; undefined for nothing yet) in `{<prefix>}:followers`, under
   * the log's own id: trimming never passes the slowest log heard from within
   * the follower timeout. The first call for an id writes at once, and a log
   * awaits it before reading the stream; later calls only note the cursor,
   * written within the report interval and repeated as a heartbeat until the
   * store closes. When the stream was already trimmed past the first cursor,
   * that log lacks what lay in between: the first call logs an error and
   * resolves with the gap, for the caller to record (`audit.gap`). A running
   * log can lose its record too (cut off from Redis, or paused, for longer than
   * the timeout): a report that finds it gone checks the same way, and the
   * follower's next call resolves with that gap. After a failed write the next
   * call writes at once, so a log resuming after an outage learns of a gap
   * before it reads on. Otherwise undefined.
   */
  recordLogCursor(followerId: string, cursor: string | undefined): Promise<StreamGap | undefined>;
  /** Trims the stream once, as the store does every `streamTrim.intervalMs`. */
  trimStream(): Promise<StreamTrimResult>;
}

/** The last id a stream can hold. */
const MAX_STREAM_ID = "18446744073709551615-18446744073709551615";

/** Request ids are writ's (`req_` + 22 characters); anything far off that is no id of ours. */
const MAX_ID_LENGTH = 256;

const STATUS_SET: ReadonlySet<string> = new Set(REQUEST_STATUSES);

function isId(id: unknown): id is string {
  return typeof id === "string" && id.length > 0 && id.length <= MAX_ID_LENGTH;
}

/** The request's invariants the indexes rely on; breaking one is a programming error. */
function checkRequest(request: AccessRequest): void {
  if (!isId(request.id)) throw new TypeError("request id must be 1-256 characters");
  if (!Number.isSafeInteger(request.version)) {
    throw new TypeError("request version must be an integer");
  }
  if (!STATUS_SET.has(request.status)) throw new TypeError(`unknown status "${request.status}"`);
  if (
    !Number.isSafeInteger(request.createdAt) ||
    request.createdAt < 0 ||
    request.createdAt > MAX_CREATED_AT
  ) {
    throw new TypeError("request createdAt must be a non-negative integer of milliseconds");
  }
  if (!Number.isFinite(request.expiresAt)) throw new TypeError("request expiresAt must be finite");
  if (typeof request.agentId !== "string" || typeof request.action !== "string") {
    throw new TypeError("request agentId and action must be strings");
  }
}

/** The script arguments of events, checked: a malformed event is a programming error. */
function eventScriptArgs(events: readonly DomainEvent[]): string[] {
  for (const event of events) {
    if (event.requestId !== NO_REQUEST && !isId(event.requestId)) {
      throw new TypeError('event requestId must be 1-256 characters, or "" for no request');
    }
  }
  return eventArgs(events);
}

/**
 * The event-id list keys the write scripts take: one per event that belongs
 * to a request, in order. Events about writ itself are in the stream only.
 */
function eventListKeys(keys: KeyLayout, events: readonly DomainEvent[]): string[] {
  return events.flatMap((e) =>
    e.requestId === NO_REQUEST ? [] : [keys.requestEvents(e.requestId)],
  );
}

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new TypeError("limit must be a positive integer");
  }
}

/** The stream ids a script replied with, one per event. */
function streamIds(ids: readonly unknown[], count: number): string[] {
  if (ids.length !== count || !ids.every((id) => typeof id === "string" && isStreamId(id))) {
    throw corrupt();
  }
  return ids as string[];
}

/** A create or commit reply: `{0}` for a conflict, `{1, id...}` once written. */
function commitReply(reply: unknown, events: readonly DomainEvent[]): CommitResult {
  if (!Array.isArray(reply)) throw corrupt();
  if (reply.length === 1 && reply[0] === 0) return { ok: false, reason: "conflict" };
  if (reply[0] !== 1) throw corrupt();
  const ids = streamIds(reply.slice(1), events.length);
  return { ok: true, events: events.map((event, i) => ({ ...event, id: ids[i] as string })) };
}

/**
 * The request store on Redis (standalone, Sentinel or Cluster), for any number
 * of writ replicas sharing it.
 *
 * Every change is one Lua script: `create` fails if the id exists; `commit`
 * compares the stored version and, on a match, writes the request, updates
 * the indexes and adds each event to the stream, else writes nothing and
 * answers `conflict`; `append` only adds events. Event ids are the stream's.
 *
 * Fail closed: any Redis error, a dropped connection or an answer later than
 * `operationTimeoutMs` is `store_unavailable`, whose message says nothing of
 * Redis. A command whose reply is lost (the connection dropped after it was
 * sent) may still have run. That can never hand out a credential without its
 * `credential.issued` record: the service returns a credential only after
 * `commit` resolved and the audit log took the events. A lost reply rejects
 * instead, the caller gets a 503 and the minted credential is dropped unseen.
 * The request may then be `issued` in Redis with its event recorded, which
 * fails closed: the credential can never be collected again, and nothing
 * ever held it.
 */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  const { client, logger } = options;
  for (const name of [
    "writCreate",
    "writCommit",
    "writAppend",
    "writList",
    "writReindex",
    "writFollow",
    "writTrim",
    "writProbe",
  ] as const) {
    if (typeof client[name] !== "function") {
      throw new TypeError(
        "the Redis client lacks writ's scripts: create it with scripts: redisStoreScripts",
      );
    }
  }
  const keys = keyLayout(options.prefix ?? "writ", options.streamKey);
  const operationTimeoutMs = options.operationTimeoutMs ?? 5_000;
  let closed = false;
  let closing: Promise<void> | undefined;
  let failing = false;

  /**
   * Runs one store operation against Redis with a deadline, turning every
   * failure into `store_unavailable`. Outages are logged once, by kind.
   */
  /**
   * {@link guard} for an operation of many round trips (a filtered scan of the
   * stream): once the caller has its answer, `signal` aborts, and the scan
   * stops at its next round trip instead of reading on for nobody.
   */
  function guardScan<T>(operation: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const answered = new AbortController();
    return guard(operation, () => run(answered.signal)).finally(() => answered.abort());
  }

  async function guard<T>(operation: string, run: () => Promise<T>): Promise<T> {
    if (closed) throw new WritError("store_unavailable", "The store is closed.");
    try {
      const result = await withDeadline(operationTimeoutMs, run());
      if (failing) {
        failing = false;
        logger.info("redis store recovered");
      }
      return result;
    } catch (error) {
      if (error instanceof WritError) {
        logger.error("redis store holds a record writ cannot read", { operation });
        throw error;
      }
      if (!failing) {
        failing = true;
        logger.error("redis store unavailable", { operation, error: errorKind(error) });
      }
      throw new WritError("store_unavailable", "The state store is unavailable; try again later.");
    }
  }

  /**
   * The highest stream id this store knows the stream to have held: from its
   * own writes and from the cursors of the audit logs that follow it. A new
   * entry's id is always higher (Redis keeps a stream's last id even through
   * trims), unless the stream lost its history (a restart without the AOF, a
   * failover to a replica that lacked the last writes) and Redis's clock is
   * now behind the lost ids. An audit log resuming after its last id would
   * pass over such an entry, and a caller waiting for it would be answered at
   * once: so a change whose events land below it is refused instead.
   */
  let highestId: string | undefined;
  let rewound = false;
  function noteId(id: string | undefined): void {
    if (id !== undefined && (highestId === undefined || compareStreamIds(id, highestId) > 0)) {
      highestId = id;
    }
  }

  /**
   * Runs a write and checks that its events went into the stream past every
   * id known before it was sent (ids learnt meanwhile may be later writes').
   */
  async function recorded(
    operation: string,
    run: () => Promise<CommitResult>,
  ): Promise<CommitResult> {
    const floor = highestId;
    const result = await guard(operation, run);
    if (!result.ok) return result;
    const first = result.events[0]?.id;
    if (first !== undefined && floor !== undefined && compareStreamIds(first, floor) <= 0) {
      if (!rewound) {
        rewound = true;
        logger.error(
          "the redis stream is behind events already read from it: Redis lost them and its clock is behind their ids; changes are refused until its new ids pass them",
          { operation, new_id: first, known_id: floor },
        );
      }
      throw new WritError("store_unavailable", "The state store is unavailable; try again later.");
    }
    if (rewound) {
      rewound = false;
      logger.info("the redis stream has passed the events it lost; changes go through again");
    }
    noteId(result.events.at(-1)?.id);
    return result;
  }

  /**
   * Closes the client, letting the replies still pending come in (a drain),
   * for at most `operationTimeoutMs`: the callers of any command still
   * unanswered by then have already given up on it, and a connection gone
   * silent would otherwise hold the close, and the process's stop, for good.
   */
  async function closeClient(): Promise<void> {
    const closing = client.close();
    try {
      await withDeadline(operationTimeoutMs, closing);
    } catch {
      closing.catch(() => {});
      client.destroy();
    }
  }

  const feed = createChangeFeed({
    connection: client,
    stream: keys.stream,
    logger,
    async versionOf(id) {
      // Bounded like every store read: the change feed treats a deadline as a
      // silent connection and wakes the waiter to read again.
      const version = await withDeadline(operationTimeoutMs, client.hGet(keys.request(id), "v"));
      return typeof version === "string" ? version : undefined;
    },
    readEvents: (after, limit) =>
      guardScan("events", (signal) =>
        readStreamEvents(
          client,
          keys,
          { limit, ...(after !== undefined ? { after } : {}) },
          signal,
        ),
      ),
    ...(options.maxWaiters !== undefined ? { maxWaiters: options.maxWaiters } : {}),
    ...(options.maxStreamWaiters !== undefined
      ? { maxStreamWaiters: options.maxStreamWaiters }
      : {}),
  });

  /** The escalation index's score of a request, or "" when it is not in the index. */
  const escalationArg = (request: AccessRequest) => {
    const at = escalationDueAt(request);
    if (at !== undefined && !Number.isFinite(at)) {
      throw new TypeError("request escalation time must be finite");
    }
    return at === undefined ? "" : String(at);
  };

  /** Index fields of a request, as the create and commit scripts take them. */
  const indexArgs = (request: AccessRequest) => [
    request.status,
    request.agentId,
    request.action,
    isLive(request.status) ? "1" : "0",
    String(request.expiresAt),
  ];

  /** Members of a time index scored at or before `now`, earliest first. */
  async function dueIn(
    key: string,
    operation: string,
    now: number,
    limit: number,
  ): Promise<string[]> {
    checkLimit(limit);
    if (!Number.isFinite(now)) throw new TypeError("now must be finite");
    return guard(operation, async () => {
      const ids = await client.zRange(key, "-inf", String(now), {
        BY: "SCORE",
        LIMIT: { offset: 0, count: limit },
      });
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === "string")) throw corrupt();
      return ids as string[];
    });
  }

  const retention = createStreamRetention({
    client,
    keys,
    guard,
    logger,
    trim: options.streamTrim,
    ...(options.followerReportIntervalMs !== undefined
      ? { reportIntervalMs: options.followerReportIntervalMs }
      : {}),
  });

  return {
    // The stream lives in Redis: a restarted replica's audit log resumes from it.
    persistent: true,

    async create(request, events) {
      checkRequest(request);
      const scriptKeys = [
        keys.request(request.id),
        keys.stream,
        keys.due,
        keys.list,
        keys.listOf(request.status),
        keys.seq,
        keys.escalations,
        ...eventListKeys(keys, events),
      ];
      const args = [
        request.id,
        JSON.stringify(request),
        String(request.version),
        ...indexArgs(request),
        timeDigits(request.createdAt),
        escalationArg(request),
        ...eventScriptArgs(events),
      ];
      return recorded("create", async () =>
        commitReply(await client.writCreate(scriptKeys, args), events),
      );
    },

    async get(id) {
      if (!isId(id)) return undefined;
      return guard("get", async () => {
        const json = await client.hGet(keys.request(id), "d");
        return json === null ? undefined : decodeRequest(json, id);
      });
    },

    async commit(next, expectedVersion, events) {
      checkRequest(next);
      if (!Number.isSafeInteger(expectedVersion)) {
        throw new TypeError("expectedVersion must be an integer");
      }
      const scriptKeys = [
        keys.request(next.id),
        keys.stream,
        keys.due,
        keys.escalations,
        keys.awaitingReviewAfter,
        ...eventListKeys(keys, events),
      ];
      const args = [
        next.id,
        String(expectedVersion),
        JSON.stringify(next),
        String(next.version),
        ...indexArgs(next),
        keys.statusListPrefix,
        escalationArg(next),
        awaitsReviewAfter(next) ? "1" : "0",
        ...eventScriptArgs(events),
      ];
      return recorded("commit", async () =>
        commitReply(await client.writCommit(scriptKeys, args), events),
      );
    },

    async append(events) {
      if (events.length === 0) return [];
      const args = eventScriptArgs(events);
      const scriptKeys = [keys.stream, ...eventListKeys(keys, events)];
      const result = await recorded("append", async () => {
        const reply = await client.writAppend(scriptKeys, args);
        if (!Array.isArray(reply)) throw corrupt();
        const ids = streamIds(reply, events.length);
        return {
          ok: true,
          events: events.map((event, i) => ({ ...event, id: ids[i] as string })),
        } as const;
      });
      return result.ok ? result.events : [];
    },

    async list(query) {
      checkLimit(query.limit);
      // A cursor this store never handed out reads as the end, never as a restart.
      if (query.cursor !== undefined && !isListCursor(query.cursor)) return { items: [] };
      if (query.status !== undefined && !STATUS_SET.has(query.status)) return { items: [] };
      for (const bound of [query.since, query.until]) {
        if (bound !== undefined && Number.isNaN(bound)) {
          throw new TypeError("since and until must be numbers");
        }
      }
      return readRequestPage(client, keys, query, (call) => guard("list", call));
    },

    due(now, limit) {
      return dueIn(keys.due, "due", now, limit);
    },

    escalationsDue(now, limit) {
      return dueIn(keys.escalations, "escalationsDue", now, limit);
    },

    async reindex(id) {
      if (!isId(id)) return false;
      return guard("reindex", async () => {
        // The JSON holds the version the script compares with the record's
        // `v`: create and commit write both in one step.
        const json = await client.hGet(keys.request(id), "d");
        const request = json === null ? undefined : decodeRequest(json, id);
        const args =
          request === undefined
            ? [id, "", "0", "0", "", "0"]
            : [
                id,
                String(request.version),
                isLive(request.status) ? "1" : "0",
                String(request.expiresAt),
                escalationArg(request),
                awaitsReviewAfter(request) ? "1" : "0",
              ];
        const reply = await client.writReindex(
          [keys.request(id), keys.due, keys.escalations, keys.awaitingReviewAfter],
          args,
        );
        if (typeof reply !== "number") throw corrupt();
        return reply > 0;
      });
    },

    async events(query) {
      checkLimit(query.limit);
      // An `after` that is no stream id (callers pass it on) matches nothing, as in the memory store;
      // nothing follows the last possible id, which Redis refuses as an exclusive bound.
      if (
        query.after !== undefined &&
        (!isStreamId(query.after) || query.after === MAX_STREAM_ID)
      ) {
        return [];
      }
      const { requestId } = query;
      if (requestId === undefined) {
        return guardScan("events", (signal) => readStreamEvents(client, keys, query, signal));
      }
      // "" is no request's id: events about writ itself belong to none.
      if (!isId(requestId)) return [];
      return guardScan(
        "events",
        async (signal) => (await readRequestEvents(client, keys, requestId, query, signal)).items,
      );
    },

    async scanEvents(query) {
      checkLimit(query.limit);
      if (!Number.isSafeInteger(query.scanLimit) || query.scanLimit < 1) {
        throw new TypeError("scanLimit must be a positive integer");
      }
      // As in `events`: an `after` that is no stream id, or the last possible one, is followed by nothing.
      if (
        query.after !== undefined &&
        (!isStreamId(query.after) || query.after === MAX_STREAM_ID)
      ) {
        return { items: [] };
      }
      const { requestId } = query;
      if (requestId === undefined) {
        return guardScan("events", (signal) => scanStreamEvents(client, keys, query, signal));
      }
      if (!isId(requestId)) return { items: [] };
      return guardScan("events", (signal) =>
        readRequestEvents(client, keys, requestId, query, signal, query.scanLimit),
      );
    },

    async recentEvents(query) {
      checkLimit(query.limit);
      const { before } = query;
      // Nothing is before the first possible id; Redis refuses an exclusive bound there.
      if (before !== undefined && (!isStreamId(before) || compareStreamIds(before, "0-0") === 0)) {
        return [];
      }
      return guard("recentEvents", async () =>
        decodeEntries(
          await client.xRevRange(keys.stream, before === undefined ? "+" : `(${before}`, "-", {
            COUNT: query.limit,
          }),
        ),
      );
    },

    waitForChange(id, version, timeoutMs, signal) {
      if (!isId(id)) return Promise.resolve();
      return feed.waitForChange(id, version, timeoutMs, signal);
    },

    waitForEvents(after, timeoutMs, signal, waitOptions) {
      return feed.waitForEvents(after, timeoutMs, signal, waitOptions);
    },

    nextEvents(after, nextOptions) {
      return feed.nextEvents(after, nextOptions);
    },

    async lastEventId() {
      return guard("lastEventId", async () => {
        const reply = await client.xRevRange(keys.stream, "+", "-", { COUNT: 1 });
        return decodeEntries(reply).at(-1)?.id;
      });
    },

    async ready() {
      if (closed || !client.isReady) return false;
      try {
        // A write check: a server that answers but takes no writes (a replica,
        // out of memory, unable to persist) would refuse every change.
        await guard("ready", () => client.writProbe([keys.seq], []));
        return true;
      } catch {
        return false;
      }
    },

    async ping() {
      const started = performance.now();
      await guard("ping", () => client.exists(keys.seq));
      return performance.now() - started;
    },

    recordLogCursor(followerId, cursor) {
      // A log holds what it has fsynced: the stream held it too.
      noteId(cursor);
      return retention.recordLogCursor(followerId, cursor);
    },

    trimStream() {
      return retention.trim();
    },

    close() {
      closing ??= (async () => {
        // The last cursors go out while the client is still open; the records stay.
        await retention.close();
        closed = true;
        await feed.close();
        if (options.closeClient) await closeClient();
      })();
      return closing;
    },
  };
}
