import type { DomainEvent, RecordedEvent } from "../domain/events.js";
import type { AccessRequest, RequestStatus } from "../domain/request.js";

export type CommitResult =
  | { readonly ok: true; readonly events: readonly RecordedEvent[] }
  | { readonly ok: false; readonly reason: "conflict" };

export interface RequestQuery {
  readonly status?: RequestStatus;
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

/**
 * Requests and their event stream. Every state change goes through `create` or
 * `commit`, which write the new state and its events in one atomic step: both or
 * neither. Implementations: the embedded memory store (dev) and Redis.
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
  /** Records events that change no state (a blocked replay, a reveal). */
  append(events: readonly DomainEvent[]): Promise<readonly RecordedEvent[]>;
  /** Requests, newest first. */
  list(query: RequestQuery): Promise<RequestPage>;
  /** Ids of live requests whose `expiresAt` is at or before `now`, oldest first. */
  due(now: number, limit: number): Promise<readonly string[]>;
  /** Recorded events in stream order. */
  events(query: EventQuery): Promise<readonly RecordedEvent[]>;
  /**
   * Resolves when the request's version differs from `version`, or after
   * `timeoutMs`, or when `signal` aborts; whichever is first.
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
   * followers of the stream: the audit log writer, `writ audit tail`.
   */
  waitForEvents(after: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<void>;
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
