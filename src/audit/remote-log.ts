import { WritError } from "../domain/errors.js";
import type { AuditLog } from "../ports/audit-log.js";
import type { Checkpoint } from "./checkpoint.js";
import { createDurableCursor } from "./durable-cursor.js";
import type { AuditLogView } from "./integrity.js";

/** What a primary process tells its workers of its audit log, after every fsync. */
export interface AuditLogReport {
  /** The last stream id fsynced; undefined for nothing yet. */
  readonly cursor: string | undefined;
  /** Whether the log can take new events (it has not failed closed). */
  readonly writable: boolean;
  /** The log's directory, its last fsynced seq and last checkpoint, for integrity checks. */
  readonly dir: string;
  readonly seq: number;
  readonly checkpoint: Checkpoint | undefined;
}

/** The audit log of a worker: kept by its primary, known through the primary's reports. */
export interface RemoteAuditLog extends AuditLog {
  /** Takes the primary's latest report. */
  report(report: AuditLogReport): void;
  /** Resolves with the first report: a worker serves nothing before it. */
  readonly ready: Promise<void>;
  /** The primary's log, as the integrity checks read it. */
  readonly view: AuditLogView;
  /** The primary is gone: nothing more can be made durable. */
  lost(): void;
}

/**
 * The audit log of a worker process. Workers do not write a log: their primary
 * follows the event stream into the one log file of the replica, fsyncs, and
 * reports how far it got. `append(events)` waits until a report covers the last
 * of the events, so a worker answers a caller only once its events are on disk,
 * the same rule as a process that keeps its own log.
 */
export function createRemoteAuditLog(options: { appendTimeoutMs?: number } = {}): RemoteAuditLog {
  const durable = createDurableCursor({
    after: undefined,
    timeoutMs: options.appendTimeoutMs ?? 10_000,
  });
  let latest: AuditLogReport | undefined;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  return {
    report(report) {
      latest = report;
      markReady();
      if (!report.writable) {
        durable.fail(new WritError("audit_unavailable", "The audit log cannot record changes."));
        return;
      }
      durable.advance(report.cursor);
    },
    ready,
    view: {
      get dir() {
        return latest?.dir ?? "";
      },
      lastSeq: () => latest?.seq ?? 0,
      lastCheckpoint: () => latest?.checkpoint,
    },
    lost() {
      durable.fail(new WritError("audit_unavailable", "The audit log's process is gone."));
    },
    append(events) {
      const last = events.at(-1);
      return last === undefined ? Promise.resolve() : durable.wait(last.id);
    },
    writable: () => latest?.writable === true && durable.failure === undefined,
    async close() {
      durable.fail(new WritError("audit_unavailable", "The audit log is closed."));
    },
  };
}
