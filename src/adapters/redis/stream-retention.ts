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
  /** Records a follower's cursor; the first call for an id answers a gap, if any. */
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
  let reportTimer: NodeJS.Timeout | undefined;
  let trimTimer: NodeJS.Timeout | undefined;
  let reporting: Promise<void> | undefined;
  let trimming: Promise<unknown> | undefined;
  let heldBack = false;
  let closing: Promise<void> | undefined;

  const write = (followerId: string, cursor: string) =>
    guard("recordLogCursor", () =>
      client.writFollow([keys.followers, keys.stream], [followerId, cursor]),
    );

  async function reportAll(): Promise<void> {
    for (const [followerId, cursor] of cursors) await write(followerId, cursor);
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
      if (cursors.has(followerId)) {
        cursors.set(followerId, value);
        return undefined;
      }
      const first = await write(followerId, value);
      if (typeof first !== "string") throw corrupt();
      cursors.set(followerId, value);
      let gap: StreamGap | undefined;
      if (cursor !== undefined && first !== "" && compareStreamIds(first, cursor) > 0) {
        gap = { follower: followerId, after: cursor, firstAvailable: first };
        // Its own cursor is gone: it was away longer than the follower timeout and
        // the stream was trimmed past it. Whatever lay in between is not in its log.
        logger.error(
          "audit log resumes after an event trimmed from the redis stream: events between them may be missing from this replica's log; another replica's log holds them",
          { resumes_after: cursor, stream_starts_at: first },
        );
      }
      if (reportTimer === undefined && closing === undefined) {
        reportTimer = setInterval(tick, reportIntervalMs);
        reportTimer.unref();
      }
      return gap;
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
