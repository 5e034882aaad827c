import type { Logger } from "../../ports/logger.js";
import type { StreamGap } from "../../ports/store.js";
import { compareStreamIds, corrupt, isStreamId } from "./codec.js";
import type { RedisStoreConnection } from "./connection.js";
import type { KeyLayout } from "./keys.js";

/**
 * How the event stream is trimmed. The stream is the only copy of an event
 * until every audit log has fsynced it, so a count alone can never decide:
 * trimming stops at the slowest log that reported within `followerTimeoutMs`.
 */
export interface StreamTrimOptions {
  /** Trim to about this many entries (whole stream nodes at a time). */
  maxLen: number;
  /**
   * A follower (one replica's audit log) not heard from for this long stops
   * holding trimming back: a replica away longer may find events it has not
   * written trimmed. Live followers report every second.
   */
  followerTimeoutMs: number;
  /** How often to trim (default 30,000 ms). */
  intervalMs?: number;
}

/** What one trim did. */
export interface StreamTrimResult {
  /** Entries removed. */
  readonly removed: number;
  /** The stream's length afterwards. */
  readonly length: number;
  /** Followers heard from within the timeout. */
  readonly liveFollowers: number;
  /** The slowest live follower's cursor, which bounds the trim. */
  readonly slowestCursor: string | undefined;
}

export interface StreamRetention {
  /**
   * Records a follower's cursor. Answers a gap, once, when the stream was
   * trimmed past the cursor while the follower had no record: found on its
   * first call, or on any report after its record had to be created again.
   */
  recordLogCursor(followerId: string, cursor: string | undefined): Promise<StreamGap | undefined>;
  trim(): Promise<StreamTrimResult>;
  /** Writes the last cursors and stops the timers. */
  close(): Promise<void>;
}

export interface StreamRetentionOptions {
  client: RedisStoreConnection;
  keys: KeyLayout;
  /** Runs a Redis call with the store's deadline and error mapping. */
  guard<T>(operation: string, run: () => Promise<T>): Promise<T>;
  logger: Logger;
  trim: StreamTrimOptions | undefined;
  /** How often cursors are written, changed or not (default 1,000 ms): also the heartbeat. */
  reportIntervalMs?: number;
}

/** Most entries one trim removes, so that no call holds Redis for long; the next run goes on. */
const TRIM_BATCH = 1_000_000;
const FOLLOWER_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
/** The cursor of a follower that has written nothing yet: it holds back every entry. */
const NOTHING_YET = "0-0";

function checkTrimOptions(trim: StreamTrimOptions): void {
  if (!Number.isSafeInteger(trim.maxLen) || trim.maxLen < 1) {
    throw new TypeError("streamTrim.maxLen must be a positive integer");
  }
  for (const [name, value] of [
    ["followerTimeoutMs", trim.followerTimeoutMs],
    ["intervalMs", trim.intervalMs ?? 30_000],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`streamTrim.${name} must be a positive integer of ms`);
    }
  }
}

function trimReply(reply: unknown): StreamTrimResult {
  if (!Array.isArray(reply) || reply.length !== 4) throw corrupt();
  const [removed, length, live, slowest] = reply as unknown[];
  if (
    typeof removed !== "number" ||
    typeof length !== "number" ||
    typeof live !== "number" ||
    typeof slowest !== "string"
  ) {
    throw corrupt();
  }
  return {
    removed,
    length,
    liveFollowers: live,
    slowestCursor: slowest === "" ? undefined : slowest,
  };
}

/**
 * The follower records and the trimmer of one store. Each audit log that
 * follows the stream reports its fsynced cursor; the first report is written
 * at once (the log waits for it before it reads, so a trimmer never misses a
 * log that has begun), later ones are written once per report interval, and
 * the last one is repeated as a heartbeat while the store is open. A closing
 * store writes the final cursor and leaves the record: a replica that
 * restarts within the follower timeout finds every event it has not written
 * still in the stream.
 */
export function createStreamRetention(options: StreamRetentionOptions): StreamRetention {
  const { client, keys, guard, logger } = options;
  const trimOptions = options.trim;
  if (trimOptions !== undefined) checkTrimOptions(trimOptions);
  const reportIntervalMs = options.reportIntervalMs ?? 1_000;
  if (!Number.isSafeInteger(reportIntervalMs) || reportIntervalMs < 1) {
    throw new TypeError("reportIntervalMs must be a positive integer of ms");
  }
  /** The latest cursor of each follower that has been written once. */
  const cursors = new Map<string, string>();
  /**
   * Followers whose last write failed: the next report is written at once, and
   * its answer checked, before the follower reads on.
   */
  const unsure = new Set<string>();
  /** The last cursor of each follower that Redis acknowledged. */
  const recorded = new Map<string, string>();
  /** Gaps found by a background report, for the follower's next report to answer. */
  const pendingGaps = new Map<string, StreamGap>();
  let reportTimer: NodeJS.Timeout | undefined;
  let trimTimer: NodeJS.Timeout | undefined;
  let reporting: Promise<void> | undefined;
  let trimming: Promise<unknown> | undefined;
  let heldBack = false;
  let closing: Promise<void> | undefined;

  /**
   * Writes a follower's cursor. A gap is possible only where its record was
   * missing: the trimmer drops a follower not heard from within the timeout,
   * and only then may it trim past that follower's cursor. So the answer is
   * checked on a follower's first write in this process, and whenever the
   * record had to be created again (a replica cut off from Redis, or paused,
   * for longer than the timeout while it kept running).
   */
  async function write(
    followerId: string,
    cursor: string,
    first: boolean,
  ): Promise<StreamGap | undefined> {
    let reply: unknown;
    try {
      reply = await guard("recordLogCursor", () =>
        client.writFollow([keys.followers, keys.stream], [followerId, cursor]),
      );
    } catch (error) {
      unsure.add(followerId);
      throw error;
    }
    unsure.delete(followerId);
    if (!Array.isArray(reply) || reply.length !== 2) throw corrupt();
    const [created, start] = reply as unknown[];
    if ((created !== 0 && created !== 1) || typeof start !== "string") throw corrupt();
    // What the trimmer last knew of this follower: where it may have trimmed past.
    const known = recorded.get(followerId);
    recorded.set(followerId, cursor);
    if ((!first && created === 0) || start === "") return undefined;
    let after: string | undefined;
    if (cursor !== NOTHING_YET && compareStreamIds(start, cursor) > 0) {
      after = cursor;
    } else if (
      !first &&
      known !== undefined &&
      (known === NOTHING_YET || compareStreamIds(start, known) > 0)
    ) {
      // It read on while its record was gone, from wherever the stream then began:
      // it may lack anything between what the trimmer last knew and that start.
      after = known;
    }
    if (after === undefined) return undefined;
    // Its own cursor is gone: it was away longer than the follower timeout and
    // the stream was trimmed past it. Whatever lay in between is not in its log.
    logger.error(
      "audit log resumes after an event trimmed from the redis stream: events between them may be missing from this replica's log; another replica's log holds them",
      { resumes_after: after, stream_starts_at: start },
    );
    return { follower: followerId, after, firstAvailable: start };
  }

  async function reportAll(): Promise<void> {
    for (const [followerId, cursor] of cursors) {
      const gap = await write(followerId, cursor, false);
      if (gap !== undefined) pendingGaps.set(followerId, gap);
    }
  }

  /** A gap a background report found for `followerId`, answered once. */
  function takeGap(followerId: string): StreamGap | undefined {
    const gap = pendingGaps.get(followerId);
    pendingGaps.delete(followerId);
    return gap;
  }

  function tick(): void {
    // One write round at a time; an outage is logged once by the store's guard.
    reporting ??= reportAll()
      .catch(() => {})
      .finally(() => {
        reporting = undefined;
      });
  }

  async function trim(): Promise<StreamTrimResult> {
    if (trimOptions === undefined) throw new TypeError("this store does not trim its stream");
    const { maxLen, followerTimeoutMs } = trimOptions;
    const result = trimReply(
      await guard("trimStream", () =>
        client.writTrim(
          [keys.stream, keys.followers],
          [String(maxLen), String(followerTimeoutMs), String(TRIM_BATCH)],
        ),
      ),
    );
    // Held back far beyond the limit: a replica's log is behind (or nothing reports).
    const behind = result.length > 2 * maxLen;
    if (behind && !heldBack) {
      logger.warn("redis stream trimming is held back by an audit log that has not caught up", {
        length: result.length,
        max_len: maxLen,
        live_followers: result.liveFollowers,
        slowest_cursor: result.slowestCursor,
      });
    }
    heldBack = behind;
    return result;
  }

  if (trimOptions !== undefined) {
    trimTimer = setInterval(() => {
      trimming ??= trim()
        .catch(() => {})
        .finally(() => {
          trimming = undefined;
        });
    }, trimOptions.intervalMs ?? 30_000);
    trimTimer.unref();
  }

  return {
    async recordLogCursor(followerId, cursor) {
      if (!FOLLOWER_ID.test(followerId)) {
        throw new TypeError("followerId must be 1-128 characters of A-Z a-z 0-9 _ . : -");
      }
      if (cursor !== undefined && !isStreamId(cursor)) {
        throw new TypeError("cursor must be a stream id");
      }
      const value = cursor ?? NOTHING_YET;
      const known = cursors.has(followerId);
      if (known) {
        cursors.set(followerId, value);
        // Written by the timer, unless the last write failed: then at once, so a
        // follower resuming after an outage learns of a gap before it reads on.
        if (!unsure.has(followerId)) return takeGap(followerId);
      }
      const gap = await write(followerId, value, !known);
      cursors.set(followerId, value);
      if (reportTimer === undefined && closing === undefined) {
        reportTimer = setInterval(tick, reportIntervalMs);
        reportTimer.unref();
      }
      return gap ?? takeGap(followerId);
    },

    trim,

    close() {
      closing ??= (async () => {
        clearInterval(reportTimer);
        clearInterval(trimTimer);
        await Promise.allSettled([reporting, trimming]);
        await reportAll().catch(() => {});
      })();
      return closing;
    },
  };
}
