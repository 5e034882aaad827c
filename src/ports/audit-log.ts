import type { RecordedEvent } from "../domain/events.js";

/**
 * The append-only, hash-chained record kept for auditors. `append` resolves only
 * once the entries are durable (fsynced), so an acknowledged change is on disk.
 */
export interface AuditLog {
  append(events: readonly RecordedEvent[]): Promise<void>;
  /**
   * Whether appends can succeed now. False once a write has failed or the log
   * is closing: callers then refuse state changes rather than make one that
   * the log would miss.
   */
  writable(): boolean;
  close(): Promise<void>;
}
