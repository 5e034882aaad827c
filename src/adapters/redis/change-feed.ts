import { WritError } from "../../domain/errors.js";
import type { RecordedEvent } from "../../domain/events.js";
import type { Logger } from "../../ports/logger.js";
import type { RequestStore } from "../../ports/store.js";
import { pause } from "../../ports/timer.js";
import { compareStreamIds, decodeEvent, isStreamId } from "./codec.js";
import { errorKind, type RedisStoreConnection, type RedisStreamReader } from "./connection.js";
import { OperationTimeout, withDeadline } from "./deadline.js";

/**
 * Wakes long-polls and stream followers when the stream grows, across every
 * process sharing the Redis: an approval on one replica wakes a long-poll on
 * another at once.
 *
 * One reader per store blocks on `XREAD` over its own connection and fans
 * each batch out to the waiters of the requests it names and to the stream
 * followers. It resumes from the last id it read, also after a lost
 * connection, so no change is missed: every create, commit and append adds
 * stream entries in the same script as the change. (A commit without events
 * wakes no one; writ never makes one, since every transition is recorded.)
 *
 * A waiter registers first and checks the state second, after the reader
 * has fixed its starting point: a change after the check is then always read
 * by the reader, and a change before it is seen by the check.
 *
 * A follower of the whole stream that has caught up with the reader (it asks
 * for what comes after an id the reader has already read past, or reached)
 * is answered from the reader's own batches: the entries that arrive are the
 * very ones it asks for, so it needs no read of its own, and it gets them in
 * the same turn as the commit that added them reaches its caller. A follower
 * behind the reader reads the stream itself (`readEvents`) until it catches up.
 *
 * Waits are bounded so that callers cannot exhaust the process's memory:
 * `maxWaiters` request waits and `maxStreamWaiters` stream waits of API
 * callers, past which a wait is refused with `store_unavailable`. Stream waits
 * marked `internal` (the process's own audit log and notification workers, a
 * fixed few) are not counted and never refused: a crowd of API callers must
 * never stall the audit log.
 */
export interface ChangeFeed
  extends Pick<RequestStore, "waitForChange" | "waitForEvents" | "nextEvents"> {
  /** Resolves every waiter and stops the reader. */
  close(): Promise<void>;
}

export interface ChangeFeedOptions {
  connection: RedisStoreConnection;
  stream: string;
  logger: Logger;
  /**
   * The request's stored version as a string, or undefined if there is none.
   * May throw; bounded by a deadline, past which it rejects with
   * `OperationTimeout` and the waiter is woken to read again.
   */
  versionOf(id: string): Promise<string | undefined>;
  /** Events of the stream after `after`, at most `limit`: a follower's own read. May throw. */
  readEvents(after: string | undefined, limit: number): Promise<readonly RecordedEvent[]>;
  /** How long one XREAD blocks; the reader's liveness check (default 5,000 ms). */
  blockMs?: number;
  /** Most concurrent `waitForChange` calls (default 10,000). */
  maxWaiters?: number;
  /** Most concurrent `waitForEvents` calls that are not `internal` (default 1,000). */
  maxStreamWaiters?: number;
}

interface Waiter {
  readonly check: () => Promise<boolean>;
  readonly finish: () => void;
  /** Whether a check has completed since the waiter registered; else the reader checks it. */
  checked: boolean;
  checking: boolean;
  /** A wake-up arrived during a check: check once more after it. */
  again: boolean;
}

interface StreamWaiter {
  readonly after: string | undefined;
  readonly finish: () => void;
}

/** A follower caught up with the reader, waiting for the entries after `after`. */
interface StreamReader {
  /** Never behind the id the reader reads after, so the reader's batches are what it asks for. */
  readonly after: string;
  readonly limit: number;
  readonly answer: (events: readonly RecordedEvent[]) => void;
  readonly fail: (error: unknown) => void;
}

/** An XREAD entry: its id, the request it names, and its fields, decoded only when asked for. */
type FeedEntry = readonly [id: string, requestId: string | undefined, fields: unknown];

/** Entries read per XREAD. */
const READ_COUNT = 1000;

function newestOf(reply: unknown): string | undefined {
  if (!Array.isArray(reply) || reply.length === 0) return undefined;
  const id = (reply[0] as { id?: unknown }).id;
  return typeof id === "string" ? id : undefined;
}

/** The entries of an XREAD reply; null (a timeout) is no entries. */
function entriesOf(reply: unknown): FeedEntry[] {
  if (reply === null) return [];
  if (!Array.isArray(reply)) throw new TypeError("unexpected XREAD reply");
  const out: FeedEntry[] = [];
  for (const stream of reply) {
    const messages = (stream as { messages?: unknown }).messages;
    if (!Array.isArray(messages)) throw new TypeError("unexpected XREAD reply");
    for (const message of messages) {
      const { id, message: fields } = message as { id?: unknown; message?: unknown };
      if (typeof id !== "string" || !isStreamId(id)) {
        throw new TypeError("unexpected XREAD reply");
      }
      const requestId = (fields as { request_id?: unknown } | null)?.request_id;
      // "" marks an event about writ itself: no request waits on it.
      out.push([
        id,
        typeof requestId === "string" && requestId !== "" ? requestId : undefined,
        fields,
      ]);
    }
  }
  return out;
}

export function createChangeFeed(options: ChangeFeedOptions): ChangeFeed {
  const { connection, stream, logger } = options;
  const blockMs = options.blockMs ?? 5_000;
  const maxWaiters = options.maxWaiters ?? 10_000;
  const maxStreamWaiters = options.maxStreamWaiters ?? 1_000;

  const byRequest = new Map<string, Set<Waiter>>();
  let waiterCount = 0;
  const streamWaiters = new Set<StreamWaiter>();
  const streamReaders = new Set<StreamReader>();
  /** Stream waiters and readers that are not `internal`: only they count against `maxStreamWaiters`. */
  let publicStreamWaiters = 0;
  /** The id the reader reads after; undefined until it has fixed its starting point. */
  let lastId: string | undefined;
  let reader: RedisStreamReader | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  const stop = new AbortController();

  function unchecked(): Waiter[] {
    const out: Waiter[] = [];
    for (const set of byRequest.values()) for (const w of set) if (!w.checked) out.push(w);
    return out;
  }

  async function runCheck(waiter: Waiter): Promise<void> {
    if (waiter.checking) {
      waiter.again = true;
      return;
    }
    waiter.checking = true;
    try {
      do {
        waiter.again = false;
        let met = false;
        try {
          met = await waiter.check();
          waiter.checked = true;
        } catch (error) {
          // No answer in time: the connection has gone silent, and a change
          // could not be learnt through it. The caller reads again and answers
          // what it finds (the state, or store_unavailable) rather than hold
          // its wait to the end.
          if (error instanceof OperationTimeout) {
            waiter.finish();
            return;
          }
          // Unknown state: the reader checks again once Redis answers.
          waiter.checked = false;
        }
        if (met) {
          waiter.finish();
          return;
        }
      } while (waiter.again);
    } finally {
      waiter.checking = false;
    }
  }

  function wakeRequests(requestIds: ReadonlySet<string>): void {
    for (const id of requestIds) {
      for (const waiter of byRequest.get(id) ?? []) void runCheck(waiter);
    }
  }

  /** Ends the waits of followers that are behind `newest`, the last id the reader knows of. */
  function wakeFollowers(newest: string): void {
    if (newest === "0-0") return;
    for (const waiter of streamWaiters) {
      if (waiter.after === undefined || compareStreamIds(newest, waiter.after) > 0) waiter.finish();
    }
  }

  /**
   * Answers the followers waiting for entries after `from`'s: `entries` is the
   * whole of the stream after `from`, up to its last, and every waiting
   * reader asks for what follows an id at or past `from`. Each entry is
   * decoded once, however many readers take it.
   */
  function answerReaders(from: string, entries: readonly FeedEntry[]): void {
    if (streamReaders.size === 0) return;
    const decoded: RecordedEvent[] = [];
    for (const reader of [...streamReaders]) {
      if (compareStreamIds(reader.after, from) < 0) continue;
      let start = 0;
      while (
        start < entries.length &&
        compareStreamIds((entries[start] as FeedEntry)[0], reader.after) <= 0
      ) {
        start++;
      }
      if (start === entries.length) continue;
      const end = Math.min(entries.length, start + reader.limit);
      try {
        for (let i = decoded.length; i < end; i++) {
          const [id, , fields] = entries[i] as FeedEntry;
          decoded.push(decodeEvent(id, fields));
        }
        reader.answer(decoded.slice(start, end));
      } catch (error) {
        reader.fail(error);
      }
    }
  }

  /** Whether a follower asking for what comes after `after` has caught up with the reader. */
  function caughtUp(after: string | undefined): boolean {
    return lastId !== undefined && compareStreamIds(after ?? "0-0", lastId) >= 0;
  }

  /** Drops the reader's connection; the next loop turn opens a new one. */
  function dropReader(): void {
    const current = reader;
    reader = undefined;
    try {
      current?.destroy();
    } catch {
      // Already closed: nothing left to release.
    }
  }

  async function loop(): Promise<void> {
    let failing = false;
    let backoffMs = 100;
    while (!closed) {
      try {
        if (reader === undefined) {
          const fresh = connection.duplicate();
          // Errors also reject the pending read, which the loop handles; the
          // listener keeps node-redis from treating them as unhandled.
          fresh.on("error", () => {});
          reader = fresh;
          await withDeadline(blockMs + 5_000, fresh.connect());
        }
        if (lastId === undefined) {
          const newest = newestOf(
            await withDeadline(blockMs, reader.xRevRange(stream, "+", "-", { COUNT: 1 })),
          );
          lastId = newest ?? "0-0";
        }
        // Waiters that registered before the starting point was fixed, or whose
        // check failed while Redis was unreachable, are checked now.
        for (const waiter of unchecked()) void runCheck(waiter);
        wakeFollowers(lastId);
        const reply = await withDeadline(
          blockMs + 5_000,
          reader.xRead({ key: stream, id: lastId }, { BLOCK: blockMs, COUNT: READ_COUNT }),
        );
        if (failing) {
          failing = false;
          backoffMs = 100;
          logger.info("redis change feed resumed");
        }
        const entries = entriesOf(reply);
        const last = entries.at(-1);
        if (last === undefined) continue;
        answerReaders(lastId, entries);
        lastId = last[0];
        const ids = new Set<string>();
        for (const [, requestId] of entries) if (requestId !== undefined) ids.add(requestId);
        wakeRequests(ids);
        wakeFollowers(lastId);
      } catch (error) {
        if (closed) return;
        if (!failing) {
          failing = true;
          logger.warn("redis change feed interrupted; retrying", { error: errorKind(error) });
        }
        dropReader();
        await pause(backoffMs, stop.signal);
        backoffMs = Math.min(backoffMs * 2, 2_000);
      }
    }
  }

  function ensureRunning(): void {
    running ??= loop();
  }

  /** Common plumbing of a wait: timeout, abort and removal, all leading to one `finish`. */
  function settleOn(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    resolve: () => void,
    remove: () => void,
  ): () => void {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", finish);
      remove();
      resolve();
    };
    const timer = setTimeout(finish, Math.max(0, timeoutMs));
    signal?.addEventListener("abort", finish, { once: true });
    return finish;
  }

  /** Waits as a caught-up follower for the reader's next entries after `after`. */
  function waitAsReader(
    after: string,
    limit: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<readonly RecordedEvent[]> {
    if (closed || signal?.aborted) return Promise.resolve([]);
    return new Promise<readonly RecordedEvent[]>((resolve, reject) => {
      // A timeout or an abort settles with nothing; the reader's batch, or its failure, otherwise.
      let outcome: { events: readonly RecordedEvent[] } | { error: unknown } = { events: [] };
      const reader: StreamReader = {
        after,
        limit,
        answer: (events) => {
          outcome = { events };
          finish();
        },
        fail: (error) => {
          outcome = { error };
          finish();
        },
      };
      const finish = settleOn(
        timeoutMs,
        signal,
        () => ("error" in outcome ? reject(outcome.error) : resolve(outcome.events)),
        () => streamReaders.delete(reader),
      );
      streamReaders.add(reader);
    });
  }

  /** Refuses a stream wait of an API caller when `maxStreamWaiters` already wait. */
  function refusedForCapacity(internal: boolean | undefined): WritError | undefined {
    return internal !== true && publicStreamWaiters >= maxStreamWaiters
      ? new WritError("store_unavailable", "Too many readers are waiting; try again later.")
      : undefined;
  }

  const feed: ChangeFeed = {
    waitForChange(id, version, timeoutMs, signal) {
      if (closed || signal?.aborted) return Promise.resolve();
      if (waiterCount >= maxWaiters) {
        return Promise.reject(
          new WritError("store_unavailable", "Too many requests are waiting; try again later."),
        );
      }
      return new Promise<void>((resolve) => {
        const expected = String(version);
        const waiter: Waiter = {
          check: async () => (await options.versionOf(id)) !== expected,
          finish: () => {},
          checked: false,
          checking: false,
          again: false,
        };
        const finish = settleOn(timeoutMs, signal, resolve, () => {
          const set = byRequest.get(id);
          if (set?.delete(waiter)) {
            waiterCount--;
            if (set.size === 0) byRequest.delete(id);
          }
        });
        (waiter as { finish: () => void }).finish = finish;
        let set = byRequest.get(id);
        if (set === undefined) {
          set = new Set();
          byRequest.set(id, set);
        }
        set.add(waiter);
        waiterCount++;
        ensureRunning();
        // Before the reader has its starting point, it checks new waiters itself.
        if (lastId !== undefined) void runCheck(waiter);
      });
    },

    waitForEvents(after, timeoutMs, signal, waitOptions) {
      if (after !== undefined && !isStreamId(after)) {
        return Promise.reject(new TypeError("waitForEvents: after must be a stream id"));
      }
      if (closed || signal?.aborted) return Promise.resolve();
      const internal = waitOptions?.internal === true;
      const refused = refusedForCapacity(internal);
      if (refused !== undefined) return Promise.reject(refused);
      return new Promise<void>((resolve) => {
        let waiter: StreamWaiter | undefined;
        const finish = settleOn(timeoutMs, signal, resolve, () => {
          if (waiter !== undefined && streamWaiters.delete(waiter) && !internal) {
            publicStreamWaiters--;
          }
        });
        waiter = { after, finish };
        streamWaiters.add(waiter);
        if (!internal) publicStreamWaiters++;
        ensureRunning();
        // Before the reader has its starting point, it wakes followers behind it itself.
        if (lastId === undefined) return;
        // The newest id is read after registering: an entry added later is
        // past the reader's starting point, so the reader wakes this waiter.
        void (async () => {
          try {
            const newest = newestOf(await connection.xRevRange(stream, "+", "-", { COUNT: 1 }));
            if (
              newest !== undefined &&
              (after === undefined || compareStreamIds(newest, after) > 0)
            ) {
              finish();
            }
          } catch {
            // Redis is unreachable: the reader wakes this waiter when it reads
            // past `after`, or the timeout ends the wait.
          }
        })();
      });
    },

    nextEvents(after, nextOptions) {
      if (after !== undefined && !isStreamId(after)) {
        return Promise.reject(new TypeError("nextEvents: after must be a stream id"));
      }
      if (closed || nextOptions.signal?.aborted) return Promise.resolve([]);
      const refused = refusedForCapacity(nextOptions.internal);
      if (refused !== undefined) return Promise.reject(refused);
      ensureRunning();
      // Counted from the call to its answer, whichever way it waits.
      const counted = nextOptions.internal !== true;
      if (counted) publicStreamWaiters++;
      return (async () => {
        const { limit, timeoutMs, signal } = nextOptions;
        const deadline = performance.now() + timeoutMs;
        // Behind the reader: read what lies between, then wait once caught up.
        // A follower that reads nothing but is still not caught up (the reader
        // moved on meanwhile, or has not started) waits for the reader to pass it.
        while (!caughtUp(after)) {
          const events = await options.readEvents(after, limit);
          if (events.length > 0) return events;
          if (caughtUp(after)) break;
          const left = deadline - performance.now();
          if (left <= 0 || closed || signal?.aborted) return [];
          await feed.waitForEvents(after, left, signal, { internal: true });
          if (closed || signal?.aborted) return [];
          if (performance.now() >= deadline) return options.readEvents(after, limit);
        }
        return waitAsReader(after ?? "0-0", limit, deadline - performance.now(), signal);
      })().finally(() => {
        if (counted) publicStreamWaiters--;
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      stop.abort();
      dropReader();
      for (const set of [...byRequest.values()]) for (const waiter of [...set]) waiter.finish();
      for (const waiter of [...streamWaiters]) waiter.finish();
      for (const reader of [...streamReaders]) reader.answer([]);
      await running;
    },
  };
  return feed;
}
