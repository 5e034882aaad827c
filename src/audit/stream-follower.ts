import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { AuditLog } from "../ports/audit-log.js";
import type { Logger } from "../ports/logger.js";
import type { RequestStore, StreamGap } from "../ports/store.js";
import { pause } from "../ports/timer.js";
import { createDurableCursor } from "./durable-cursor.js";
import type { FileAuditLog } from "./file-audit-log.js";

export interface StreamFollowingLogOptions {
  store: RequestStore;
  file: FileAuditLog;
  logger: Logger;
  /**
   * Resume after this stream id. Undefined starts at the beginning of the
   * stream, so a new replica's log back-fills everything the stream holds.
   */
  after: string | undefined;
  /** Events read per batch (default 500). */
  batchSize?: number;
  /** Longest idle wait before re-reading the stream, in ms (default 5,000). */
  idleWaitMs?: number;
  /**
   * How long `append` waits for the follower to reach its events before the
   * caller gets `audit_unavailable` (default 10,000 ms): a store that stays
   * unreachable must not hold requests open forever.
   */
  appendTimeoutMs?: number;
  /**
   * Told how far the file has fsynced the stream: first with where it resumes,
   * awaited before the first read (a stream trimmer then knows of this log
   * before it reads anything; a failure is retried like an unreachable store),
   * and again so, awaited, once the store answers after being unreachable;
   * then after every fsynced batch and at close, not awaited. Any answer may
   * be a gap: the stream was trimmed past where this log stood. It is recorded
   * (`onGap`) before the next read.
   */
  onDurable?: (cursor: string | undefined) => Promise<StreamGap | undefined> | Promise<void> | void;
  /**
   * Records a gap the first `onDurable` answered (as an `audit.gap` event in the
   * stream, which this log then writes like any other), before the first read.
   * A `store_unavailable` failure is retried like an unreachable store.
   */
  onGap?: (gap: StreamGap) => Promise<unknown>;
  /**
   * Told once when the log fails closed (a write failed, or the stream could
   * not be followed): from then on `writable()` is false and every `append`
   * rejects. Not told of a close.
   */
  onFailed?: (error: WritError) => void;
}

/** Batches handed to the file and not yet fsynced, at most, before reading waits. */
const MAX_BATCHES_IN_FLIGHT = 4;

/** The longest pause between two attempts while the store is unreachable. */
const MAX_RETRY_MS = 1_000;

/**
 * An audit log fed by the store's event stream rather than by its callers.
 *
 * The stream is the one ordered record of every replica's changes. Each writ
 * process follows it from where its own file ends and appends every event, its
 * own and other replicas', in stream order; so every replica's file is a
 * complete copy of the one sequence and verifies on its own. `append(events)`
 * (called by the use cases after a commit) does not write: it waits until the
 * follower has fsynced past the last of those events, which keeps the rule
 * that an answer is sent only once its events are on disk.
 */
export function createStreamFollowingLog(options: StreamFollowingLogOptions): AuditLog {
  const { store, file, logger } = options;
  const batchSize = options.batchSize ?? 500;
  const idleWaitMs = options.idleWaitMs ?? 5_000;
  const appendTimeoutMs = options.appendTimeoutMs ?? 10_000;
  const durableCursor = createDurableCursor({ after: options.after, timeoutMs: appendTimeoutMs });
  const stop = new AbortController();
  let announced = options.onDurable === undefined;

  /** A gap a later report answered: recorded before the next read. */
  let reportedGap: StreamGap | undefined;

  function reportDurable(): void {
    try {
      void Promise.resolve(options.onDurable?.(durableCursor.cursor)).then(
        (answer) => {
          if (answer) reportedGap ??= answer;
        },
        () => {},
      );
    } catch {
      // A report that cannot be made only holds trimming back.
    }
  }

  /** The last stream id read and handed to the file: reading continues from it. */
  let readCursor = options.after;
  /** Batches handed to the file whose fsync has not finished, oldest first. */
  const writing: Promise<void>[] = [];

  function failWith(error: unknown): void {
    if (durableCursor.failure !== undefined) return;
    logger.error("audit log follower stopped", {
      error: (error as Error).message,
      after: durableCursor.cursor,
    });
    const failure =
      error instanceof WritError
        ? error
        : new WritError("audit_unavailable", "The audit log could not record events.");
    durableCursor.fail(failure);
    stop.abort();
    try {
      options.onFailed?.(failure);
    } catch {
      // Whoever is told can do nothing more here: the log has failed closed anyway.
    }
  }

  /** Pauses before the next attempt, longer after each failure in a row: never a spin. */
  let retryMs = 0;
  function backOff(): Promise<void> {
    retryMs = Math.min(Math.max(retryMs * 2, 50), MAX_RETRY_MS);
    return pause(retryMs, stop.signal);
  }

  /**
   * Hands a batch to the file without waiting for its fsync: the next batch is
   * read from the store while the file syncs the last one, and the file's group
   * commit writes whatever queued meanwhile as soon as that sync ends. Callers
   * are settled as each batch becomes durable, in order (the file writes
   * batches in the order they were handed over).
   */
  function handOver(batch: readonly RecordedEvent[]): void {
    const last = (batch.at(-1) as RecordedEvent).id;
    readCursor = last;
    const written = file.append(batch).then(
      () => {
        durableCursor.advance(last);
        reportDurable();
      },
      (error: unknown) => failWith(error),
    );
    writing.push(written);
    void written.finally(() => writing.splice(writing.indexOf(written), 1));
  }

  /**
   * At most `MAX_BATCHES_IN_FLIGHT` batches wait on the disk, so a slow disk
   * slows the reading rather than filling memory.
   */
  async function roomToWrite(): Promise<void> {
    if (writing.length >= MAX_BATCHES_IN_FLIGHT) await writing[0];
    if (durableCursor.failure !== undefined) throw durableCursor.failure;
  }

  /**
   * Follows the stream until stopped: each read answers as soon as the stream
   * holds events past the last one read, whichever process recorded them.
   */
  async function follow(): Promise<void> {
    while (!stop.signal.aborted && reportedGap === undefined) {
      await roomToWrite();
      const batch = await store.nextEvents(readCursor, {
        limit: batchSize,
        timeoutMs: idleWaitMs,
        signal: stop.signal,
        // A crowd of API long-polls never gets this read refused.
        internal: true,
      });
      retryMs = 0;
      if (batch.length > 0) handOver(batch);
      // Idle: report anyway (the store writes reports on its own timer), so a
      // gap its heartbeat found reaches this log without waiting for events.
      else if (!stop.signal.aborted) reportDurable();
    }
  }

  /** Reads and hands over whatever the stream holds now, without waiting for more. */
  async function drain(): Promise<void> {
    for (;;) {
      await roomToWrite();
      const batch = await store.events({
        limit: batchSize,
        ...(readCursor !== undefined ? { after: readCursor } : {}),
      });
      if (batch.length === 0) return;
      handOver(batch);
      if (batch.length < batchSize) return;
    }
  }

  /** Waits until every batch handed to the file is fsynced (or the log failed). */
  async function durable(): Promise<void> {
    while (writing.length > 0) await writing[writing.length - 1];
  }

  const loop = (async () => {
    let gap: StreamGap | undefined;
    while (!stop.signal.aborted) {
      try {
        if (!announced) {
          gap = (await options.onDurable?.(durableCursor.cursor)) ?? undefined;
          announced = true;
        }
        if (gap === undefined && reportedGap !== undefined) {
          gap = reportedGap;
          reportedGap = undefined;
        }
        if (gap !== undefined && options.onGap !== undefined) {
          await options.onGap(gap);
          logger.error(
            "audit log resumes after events trimmed from the stream; recorded as audit.gap",
            { follower: gap.follower, after: gap.after, first_available: gap.firstAvailable },
          );
          gap = undefined;
        }
        await follow();
      } catch (error) {
        if (error instanceof WritError && error.code === "store_unavailable") {
          // The store will come back; callers waiting meanwhile time out on their own.
          // On its return this log reports where it stands again, awaited, before
          // it reads on: if it was away long enough to be trimmed past, the gap
          // is recorded first.
          if (options.onDurable !== undefined) announced = false;
          await backOff();
          continue;
        }
        failWith(error);
        return;
      }
    }
  })();

  return {
    append(events) {
      const last = events.at(-1);
      if (last === undefined) return Promise.resolve();
      // The follower reads these events as soon as they are in the stream.
      return durableCursor.wait(last.id);
    },
    writable: () => durableCursor.failure === undefined && file.writable(),
    async close() {
      stop.abort();
      await loop;
      // Whatever the stream holds by now is written before the file closes.
      if (announced && durableCursor.failure === undefined) await drain().catch(() => {});
      await durable();
      reportDurable();
      durableCursor.fail(new WritError("audit_unavailable", "The audit log is closed."));
      await file.close();
    },
  };
}
