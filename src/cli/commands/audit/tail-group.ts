import { hostname } from "node:os";
import { errorKind } from "../../../adapters/redis/connection.js";
import {
  createStreamGroupReader,
  GROUP_NAME,
  StreamGroupError,
  type StreamGroupReader,
} from "../../../adapters/redis/consumer-group.js";
import { ConfigError } from "../../../config/load.js";
import { type AuditStreamConnection, openAuditStream } from "../../../config/wire-audit-stream.js";
import type { RecordedEvent } from "../../../domain/events.js";

export { auditStreamConfigured } from "../../../config/wire-audit-stream.js";
export { GROUP_NAME };

import { isWritError } from "../../../domain/errors.js";
import { eventView } from "../../../http/views.js";
import type { Logger } from "../../../ports/logger.js";
import { pause } from "../../../ports/timer.js";
import { type CommandIo, EXIT } from "../../command.js";
import { printable } from "../render-request.js";
import { createEventFilter, type EventFilterOptions } from "./event-filter.js";
import { eventLine } from "./render-event.js";

/** Entries read per XREADGROUP. */
const BATCH = 100;
/** How long one XREADGROUP waits for new entries; Ctrl-C ends the wait at once. */
const BLOCK_MS = 5_000;
const MAX_BACKOFF_MS = 30_000;

export interface GroupTailOptions {
  /** The writ configuration naming Redis; else `WRIT_CONFIG`, else `WRIT_REDIS_URL` alone. */
  readonly configFile: string | undefined;
  readonly group: string;
  readonly consumer: string;
  /** Where a new group starts: the beginning of the stream, or only new events. */
  readonly fromStart: boolean;
  readonly filter: EventFilterOptions;
  readonly json: boolean;
}

/** A consumer name that stays the same across restarts on one host, so its pending events are found again. */
export function defaultConsumer(): string {
  const name = hostname()
    .replace(/[^A-Za-z0-9_.:@-]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 64);
  return GROUP_NAME.test(name) ? name : "writ-audit-tail";
}

/** stdout could not take a line: nothing of its batch is acknowledged. */
class OutputError extends Error {
  override readonly name = "OutputError";
}

/** What went wrong with Redis, by kind only (node-redis names its errors by class, not `name`). */
function failureKind(error: unknown): string {
  const kind = errorKind(error);
  return kind === "Error" && error instanceof Error ? error.constructor.name : kind;
}

function stderrLogger(io: CommandIo): Logger {
  const line = (message: string) => io.stderr(`writ audit tail: ${printable(message)}\n`);
  return { info: line, warn: line, error: line };
}

async function connect(
  options: GroupTailOptions,
  io: CommandIo,
): Promise<AuditStreamConnection | number> {
  try {
    return await openAuditStream({
      configFile: options.configFile,
      env: io.env,
      logger: stderrLogger(io),
      clientName: "writ-audit-tail",
      // The connection's health check waits behind a blocked read: allowed
      // for, an idle wait is never taken for a dead connection.
      blockingMs: BLOCK_MS,
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      // One problem a line, as the loader wrote them; each line made safe on its own.
      io.stderr(`writ audit tail: ${error.message.split("\n").map(printable).join("\n")}\n`);
      return EXIT.failed;
    }
    if (isWritError(error)) {
      io.stderr(`writ audit tail: ${error.code}: ${printable(error.message)}\n`);
      return EXIT.failed;
    }
    throw error;
  }
}

/**
 * Prints one batch, then acknowledges it: an event leaves the group's pending
 * list only once its line is out, so a tail that dies in between prints it
 * again on its next start (at least once, never lost).
 */
async function ship(
  reader: StreamGroupReader,
  batch: readonly RecordedEvent[],
  matches: ReturnType<typeof createEventFilter>,
  options: GroupTailOptions,
  io: CommandIo,
): Promise<void> {
  const lines: string[] = [];
  for (const event of batch) {
    const view = eventView(event);
    if (await matches(view)) lines.push(options.json ? JSON.stringify(view) : eventLine(view));
  }
  if (lines.length > 0) {
    try {
      io.stdout(`${lines.join("\n")}\n`);
    } catch (error) {
      throw new OutputError((error as Error).message);
    }
    // A broken pipe is reported by Node after the write returns (on the next
    // tick): yield once so that it ends the process before the acknowledgement.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await reader.ack(batch.map((e) => e.id));
}

/**
 * `writ audit tail --group`: reads the Redis stream directly as one consumer
 * of a consumer group. It first prints what this consumer was given but never
 * acknowledged (its pending entries), then new events, blocking in Redis.
 */
export async function tailConsumerGroup(
  options: GroupTailOptions,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  const opened = await connect(options, io);
  if (typeof opened === "number") return opened;
  const { connection, keys, endpoint } = opened;
  const reader = createStreamGroupReader({
    connection,
    keys,
    group: options.group,
    consumer: options.consumer,
  });
  const matches = createEventFilter(options.filter, (id) => reader.agentOf(id));
  const say = (text: string) => io.stderr(`writ audit tail: ${printable(text)}\n`);
  try {
    const created = await reader.ensureGroup(options.fromStart ? "0" : "$");
    say(
      created
        ? `created group ${options.group} on ${keys.stream} at ${endpoint}, ${options.fromStart ? "from the start of the stream" : "from new events on"}`
        : `following group ${options.group} on ${keys.stream} at ${endpoint}${options.fromStart ? " (it exists: --from-start applies only to a new group; it resumes where it stopped)" : ""}`,
    );
    say(`consumer ${options.consumer}`);
    // Pending entries first, from the oldest; then new ones. Any failure goes
    // back to the pending ones: a read whose reply was lost left entries there.
    let pendingAfter: string | undefined = "0";
    let backoffMs = 500;
    while (!signal.aborted) {
      try {
        const batch: readonly RecordedEvent[] =
          pendingAfter !== undefined
            ? await reader.pending(pendingAfter, BATCH, (ids) =>
                say(
                  `${ids.length} pending event(s) were trimmed from the stream before they were printed: ${ids.join(", ")}`,
                ),
              )
            : await reader.next(BATCH, BLOCK_MS, signal);
        if (pendingAfter !== undefined && batch.length === 0) {
          pendingAfter = undefined;
          continue;
        }
        await ship(reader, batch, matches, options, io);
        if (pendingAfter !== undefined) pendingAfter = batch.at(-1)?.id ?? pendingAfter;
        backoffMs = 500;
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof OutputError) {
          say(
            `could not write to stdout (${error.message}); the events not printed stay pending for the next run`,
          );
          return EXIT.failed;
        }
        if (error instanceof StreamGroupError) {
          say(error.message);
          return EXIT.failed;
        }
        say(`Redis unavailable (${failureKind(error)}); retrying in ${backoffMs / 1000} s`);
        await pause(backoffMs, signal);
        backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
        pendingAfter = "0";
      }
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof StreamGroupError) {
      say(error.message);
      return EXIT.failed;
    }
    throw error;
  } finally {
    // After an interrupted read the connection is already gone.
    await connection.close().catch(() => undefined);
  }
}
