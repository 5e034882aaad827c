import { ErrorReply } from "redis";
import { WritError } from "../../domain/errors.js";
import type { RecordedEvent } from "../../domain/events.js";
import { decodeEvent, isStreamId } from "./codec.js";
import type { KeyLayout } from "./keys.js";

/**
 * The commands a consumer-group reader sends. A node-redis client or cluster
 * has them all; replies are typed `unknown` because the reader checks them.
 */
export interface RedisGroupConnection {
  xGroupCreate(
    key: string,
    group: string,
    id: string,
    options?: { MKSTREAM?: boolean },
  ): Promise<unknown>;
  xReadGroup(
    group: string,
    consumer: string,
    streams: { key: string; id: string },
    options?: { COUNT?: number; BLOCK?: number },
  ): Promise<unknown>;
  xAck(key: string, group: string, ids: string[]): Promise<unknown>;
  xPendingRange(
    key: string,
    group: string,
    start: string,
    end: string,
    count: number,
    options?: { consumer?: string },
  ): Promise<unknown>;
  xRange(key: string, start: string, end: string): Promise<unknown>;
  hGet(key: string, field: string): Promise<unknown>;
  /** Closes at once, rejecting pending commands (a blocked read among them). */
  destroy(): void;
  /** Waits for pending replies, then closes. */
  close(): Promise<void>;
}

const METHODS = [
  "xGroupCreate",
  "xReadGroup",
  "xAck",
  "xPendingRange",
  "xRange",
  "hGet",
  "destroy",
  "close",
] as const;

/** Checks that a connection (from `connectRedis`) can run consumer-group commands. */
export function asGroupConnection(client: object): RedisGroupConnection {
  const candidate = client as Record<string, unknown>;
  const missing = METHODS.filter((m) => typeof candidate[m] !== "function");
  if (missing.length > 0) {
    throw new TypeError(`the Redis connection cannot read consumer groups (${missing.join(", ")})`);
  }
  return client as unknown as RedisGroupConnection;
}

/**
 * Redis refused a command, or the stream holds an entry writ did not write:
 * retrying cannot help, unlike a lost connection.
 */
export class StreamGroupError extends Error {
  override readonly name = "StreamGroupError";
  /** `refused`: Redis answered an error (NOGROUP, WRONGTYPE, NOPERM …); `foreign_entry`: not a writ event. */
  readonly code: "refused" | "foreign_entry";

  constructor(code: StreamGroupError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/** Group and consumer names: printable, no spaces, short (they are Redis arguments and appear in logs). */
export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$/;

export interface StreamGroupReaderOptions {
  readonly connection: RedisGroupConnection;
  /** The store's key layout: the stream and the request hashes. */
  readonly keys: KeyLayout;
  readonly group: string;
  readonly consumer: string;
}

/**
 * Reads writ's event stream as one consumer of a Redis consumer group: each
 * event is delivered to one consumer of the group, stays pending until it is
 * acknowledged, and a consumer that restarts reads its pending events again
 * first. Entries are decoded with the store's own codec.
 */
export interface StreamGroupReader {
  /** Creates the group at `start` ("0": the whole stream, "$": new events) unless it exists; true if created. */
  ensureGroup(start: "0" | "$"): Promise<boolean>;
  /**
   * This consumer's pending events (delivered, not acknowledged) after `after`
   * ("0" for all), oldest first. Pending entries trimmed from the stream
   * meanwhile are acknowledged and their ids passed to `onTrimmed`: there is
   * nothing left to print.
   */
  pending(
    after: string,
    count: number,
    onTrimmed: (ids: readonly string[]) => void,
  ): Promise<RecordedEvent[]>;
  /** Events never delivered to the group, waiting up to `blockMs`; `signal` ends the wait at once. */
  next(count: number, blockMs: number, signal?: AbortSignal): Promise<RecordedEvent[]>;
  /** Acknowledges events: they leave this consumer's pending list. */
  ack(ids: readonly string[]): Promise<void>;
  /** The agent of a request, from its stored hash; undefined if the store no longer holds it. */
  agentOf(requestId: string): Promise<string | undefined>;
}

function refused(command: string, error: ErrorReply): StreamGroupError {
  // The reply's first word is its code; the rest may quote keys, which is noise here.
  const code = /^[A-Z]+/.exec(error.message)?.[0] ?? "ERR";
  return new StreamGroupError("refused", `Redis refused ${command}: ${code}`);
}

async function send<T>(command: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ErrorReply) throw refused(command, error);
    throw error;
  }
}

function decodeReply(reply: unknown): RecordedEvent[] {
  if (reply === null) return [];
  if (!Array.isArray(reply))
    throw new WritError("store_unavailable", "unexpected XREADGROUP reply");
  const out: RecordedEvent[] = [];
  for (const stream of reply) {
    const messages = (stream as { messages?: unknown }).messages;
    if (!Array.isArray(messages)) {
      throw new WritError("store_unavailable", "unexpected XREADGROUP reply");
    }
    for (const entry of messages) {
      const { id, message } = entry as { id?: unknown; message?: unknown };
      if (typeof id !== "string" || !isStreamId(id)) {
        throw new WritError("store_unavailable", "unexpected XREADGROUP reply");
      }
      try {
        out.push(decodeEvent(id, message));
      } catch {
        throw new StreamGroupError(
          "foreign_entry",
          `stream entry ${id} is not a writ event; it and what follows stay unacknowledged`,
        );
      }
    }
  }
  return out;
}

export function createStreamGroupReader(options: StreamGroupReaderOptions): StreamGroupReader {
  const { connection, keys, group, consumer } = options;
  if (!GROUP_NAME.test(group) || !GROUP_NAME.test(consumer)) {
    throw new TypeError("group and consumer names must match GROUP_NAME");
  }
  const stream = keys.stream;

  /** Acknowledges this consumer's pending entries that the stream no longer holds. */
  async function ackTrimmed(after: string, count: number): Promise<string[]> {
    const reply = await send("XPENDING", () =>
      connection.xPendingRange(stream, group, after === "0" ? "-" : `(${after}`, "+", count, {
        consumer,
      }),
    );
    if (!Array.isArray(reply))
      throw new WritError("store_unavailable", "unexpected XPENDING reply");
    const ids = reply
      .map((p) => (p as { id?: unknown }).id)
      .filter((id): id is string => typeof id === "string" && isStreamId(id));
    const present = await Promise.all(
      ids.map((id) => send("XRANGE", () => connection.xRange(stream, id, id))),
    );
    const gone = ids.filter((_, i) => {
      const entries = present[i];
      return !Array.isArray(entries) || entries.length === 0;
    });
    if (gone.length > 0) await send("XACK", () => connection.xAck(stream, group, gone));
    return gone;
  }

  return {
    async ensureGroup(start) {
      try {
        await connection.xGroupCreate(stream, group, start, { MKSTREAM: true });
        return true;
      } catch (error) {
        if (error instanceof ErrorReply && error.message.startsWith("BUSYGROUP")) return false;
        if (error instanceof ErrorReply) throw refused("XGROUP CREATE", error);
        throw error;
      }
    },

    async pending(after, count, onTrimmed) {
      for (let attempt = 0; ; attempt++) {
        try {
          return decodeReply(
            await send("XREADGROUP", () =>
              connection.xReadGroup(group, consumer, { key: stream, id: after }, { COUNT: count }),
            ),
          );
        } catch (error) {
          // node-redis cannot parse the nil body Redis sends for a pending entry that
          // was trimmed away: clear those, then read again.
          if (!(error instanceof TypeError) || attempt > 0) throw error;
          const gone = await ackTrimmed(after, count);
          if (gone.length === 0) throw error;
          onTrimmed(gone);
        }
      }
    },

    async next(count, blockMs, signal) {
      // A blocked read holds its connection until it answers: closing the
      // connection is the only way to end it early.
      const interrupt = () => connection.destroy();
      signal?.addEventListener("abort", interrupt, { once: true });
      try {
        return decodeReply(
          await send("XREADGROUP", () =>
            connection.xReadGroup(
              group,
              consumer,
              { key: stream, id: ">" },
              { COUNT: count, BLOCK: blockMs },
            ),
          ),
        );
      } finally {
        signal?.removeEventListener("abort", interrupt);
      }
    },

    async ack(ids) {
      if (ids.length === 0) return;
      await send("XACK", () => connection.xAck(stream, group, [...ids]));
    },

    async agentOf(requestId) {
      const agent = await send("HGET", () => connection.hGet(keys.request(requestId), "a"));
      return typeof agent === "string" && agent !== "" ? agent : undefined;
    },
  };
}
