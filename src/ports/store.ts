import type { DomainEvent, RecordedEvent } from "../domain/events.js";
import type { AccessRequest, RequestStatus } from "../domain/request.js";

export type CommitResult =
  | { readonly ok: true; readonly events: readonly RecordedEvent[] }
  | { readonly ok: false; readonly reason: "conflict" };

export interface RequestQuery {
  /**
   * Only requests of this status. A store need not combine it with `awaiting`
   * (each has its own index): callers pass one or the other.
   */
  readonly status?: RequestStatus;
  /**
   * `review_after`: only requests waiting for their review after the fact
   * (`awaitsReviewAfter`). `create` and `commit` keep this index in the same
   * atomic step as the request; a store that reads an index entry something
   * else left still lists only requests whose record says they wait.
   */
  readonly awaiting?: "review_after";
  readonly agentId?: string;
  readonly action?: string;
  /** Only requests created at or after this time (ms). */
  readonly since?: number;
  /** Only requests created before this time (ms). */
  readonly until?: number;
  readonly limit: number;
  /** Opaque cursor returned as `next` by a previous call. */
  readonly cursor?: string;
}

export interface RequestPage {
  readonly items: readonly AccessRequest[];
  readonly next?: string;
}

export interface EventQuery {
  /**
   * Only the events of this request. Events about writ itself (`requestId`
   * `NO_REQUEST`, "") belong to no request: this filter never returns them,
   * not even for "".
   */
  readonly requestId?: string;
  readonly type?: string;
  /** Only events after this stream id. */
  readonly after?: string;
  /** Only events whose `time` is at or after this (ms since the epoch). */
  readonly since?: number;
  /** Only events whose `time` is before this (ms since the epoch). */
  readonly until?: number;
  readonly limit: number;
}

/** A bounded read of the stream, or of one request's events: see `RequestStore.scanEvents`. */
export interface EventScanQuery extends EventQuery {
  /**
   * Most entries the read passes over, matching or not (at least 1): stream
   * entries, or with `requestId` that request's events.
   */
  readonly scanLimit: number;
}

/** What `RequestStore.scanEvents` found. */
export interface EventScan {
  /** The matching events, in stream order: at most `limit`. */
  readonly items: readonly RecordedEvent[];
  /**
   * Set when the read stopped before it knew the stream had ended: it filled
   * `limit`, or passed over `scanLimit` entries. The id of the last entry it
   * passed over, matching or not: a caller continues with it as `after`, and
   * misses and repeats nothing. It may be the stream's last entry, and a read
   * after it answers nothing without `next`.
   */
  readonly next?: string;
}

/** A page of the newest events: see `RequestStore.recentEvents`. */
export interface RecentEventsQuery {
  /**
   * Only events before this stream id: the `id` of the oldest event of the
   * previous page. From the newest event when undefined.
   */
  readonly before?: string;
  readonly limit: number;
}

/** Options of `waitForEvents`. */
export interface StreamWaitOptions {
  /**
   * The caller is one of this process's own followers of the stream (its audit
   * log, its notification workers): a fixed few per process, which a store
   * never refuses for want of capacity. Waits on behalf of API callers leave
   * this unset and may be refused with `store_unavailable` when too many wait.
   */
  readonly internal?: boolean;
}

/** Options of `nextEvents`. */
export interface NextEventsOptions extends StreamWaitOptions {
  /** Most events answered. */
  readonly limit: number;
  /** How long to wait when the stream holds nothing after `after` yet. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Events a follower of the stream can no longer read: the stream was trimmed
 * past where its log resumes. Whatever lay after `after` and before
 * `firstAvailable` is not in that log (the range may hold nothing, when exactly
 * the log's last event was trimmed); the logs of replicas that followed the
 * stream meanwhile hold it.
 */
export interface StreamGap {
  /** The id the log reports its cursor under. */
  readonly follower: string;
  /** The last event the log holds. */
  readonly after: string;
  /** The oldest event the stream still holds. */
  readonly firstAvailable: string;
}

/**
 * Requests and their event stream. Every state change goes through `create` or
 * `commit`, which write the new state and its events in one atomic step: both or
 * neither. Implementations: the embedded memory store (dev) and Redis.
 *
 * Events usually belong to a request. Those about writ itself (`audit.repaired`,
 * `audit.gap`) carry `requestId` `NO_REQUEST` (""): every method that records
 * events takes them, `events()` returns them in stream order with the others
 * and by type, and `events({ requestId })` never does.
 */
export interface RequestStore {
  /**
   * Whether the event stream outlives this process (Redis) or starts empty with
   * it (the embedded store). A persistent stream lets a restarted process's
   * audit log resume where it stopped and back-fill what it missed.
   */
  readonly persistent: boolean;
  /** Stores a new request with its first events. Fails with `conflict` if the id exists. */
  create(request: AccessRequest, events: readonly DomainEvent[]): Promise<CommitResult>;
  get(id: string): Promise<AccessRequest | undefined>;
  /**
   * Replaces the request if its stored version is still `expectedVersion`
   * (compare-and-swap), appending `events` in the same step.
   */
  commit(
    next: AccessRequest,
    expectedVersion: number,
    events: readonly DomainEvent[],
  ): Promise<CommitResult>;
  /** Records events that change no state (a blocked replay, a reveal, an audit repair). */
  append(events: readonly DomainEvent[]): Promise<readonly RecordedEvent[]>;
  /** Requests, newest first. */
  list(query: RequestQuery): Promise<RequestPage>;
  /** Ids of live requests whose `expiresAt` is at or before `now`, oldest first. */
  due(now: number, limit: number): Promise<readonly string[]>;
  /**
   * Ids of requests whose escalation time (`escalationDueAt`: pending, with an
   * escalation, not yet escalated) is at or before `now`, earliest first. The
   * index is kept by `create` and `commit` in the same atomic step as the
   * request: a request leaves it once it is escalated or leaves `pending`.
   * An entry can outlive its request's escalation when something else wrote
   * the store (a replica of an earlier release, which knows no such index,
   * deciding the request; a hand edit): the sweep puts it right with `reindex`.
   */
  escalationsDue(now: number, limit: number): Promise<readonly string[]>;
  /**
   * Puts the entries of request `id` in the indexes the sweeps read (`due`,
   * `escalationsDue`, `list({ awaiting })`) right from its stored record, or
   * drops them when no such request exists: for a sweep that found an entry
   * leading to nothing to do, which it would otherwise read first on every
   * pass, before the entries behind it. The change applies only if the record
   * is still the one read (its version, or its absence), in one atomic step,
   * so an entry that a concurrent `commit` has just written stays. Resolves
   * with whether any entry changed; a store whose indexes derive from its
   * records always has them right and resolves with false.
   */
  reindex(id: string): Promise<boolean>;
  /**
   * Recorded events in stream order. Filters by type or time are applied
   * while reading: without `after`, such a read starts at the oldest event
   * and costs every event it passes over, so on a long stream it can take
   * until the store's deadline. `scanEvents` bounds such a read.
   */
  events(query: EventQuery): Promise<readonly RecordedEvent[]>;
  /**
   * Recorded events of the whole stream (events about writ itself too), or
   * with `query.requestId` of that request, after `query.after`, filtered like
   * `events`, in stream order, passing over at most `query.scanLimit` entries:
   * a filter that rarely matches costs each call its budget, never the whole
   * stream or every event of a request that has very many. The answer says
   * where the read stopped (`next`), even when it found nothing, so that a
   * caller walks a long stream in bounded steps.
   */
  scanEvents(query: EventScanQuery): Promise<EventScan>;
  /**
   * Recorded events newest first, all of them (events about writ itself
   * too): at most `limit`, those before `query.before`, or from the newest.
   * Each call costs its page, however long the stream, so views of recent
   * activity page back from here and stop once the events are older than
   * they show. A `before` that is no event id of this store answers nothing.
   */
  recentEvents(query: RecentEventsQuery): Promise<readonly RecordedEvent[]>;
  /**
   * Resolves when the request's version differs from `version`, or after
   * `timeoutMs`, or when `signal` aborts; whichever is first. A store may
   * refuse it with `store_unavailable` when too many are waiting (the service
   * caps each principal's share, so that one caller cannot take them all).
   */
  waitForChange(
    id: string,
    version: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * Resolves when the stream holds an event after `after` (any event when
   * `after` is undefined), or after `timeoutMs`, or when `signal` aborts. For
   * followers of the stream: the audit log writer, notification workers, event
   * long-polls. A store may refuse a wait that is not `internal` with
   * `store_unavailable` when too many are waiting.
   */
  waitForEvents(
    after: string | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
    options?: StreamWaitOptions,
  ): Promise<void>;
  /**
   * A blocking read for followers of the whole stream (the audit log writer):
   * the events after `after` (from the first when undefined), at most
   * `options.limit`, in stream order. When there are none yet it waits for the
   * next to be recorded, by any process sharing the store, and answers them,
   * or [] after `options.timeoutMs` or once `options.signal` aborts. Refused
   * like `waitForEvents` when too many wait. The Redis store answers a
   * follower that has caught up from the entries its change feed reads
   * anyway, without a read of its own.
   */
  nextEvents(
    after: string | undefined,
    options: NextEventsOptions,
  ): Promise<readonly RecordedEvent[]>;
  /**
   * The id of the newest event in the stream, or undefined while it is empty.
   * Read before a query, it is a position the query has covered: followers
   * (`writ audit tail`) start there, and long-polls wait past it.
   */
  lastEventId(): Promise<string | undefined>;
  /** Whether the store can serve state changes now. */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
