import type { RecordedEvent } from "../domain/events.js";

/**
 * The append-only, hash-chained record kept for auditors. `append` resolves only
 * once the entries are durable (fsynced), so an acknowledged change is on disk.
 */
export interface AuditLog {
  append(events: readonly RecordedEvent[]): Promise<void>;
  close(): Promise<void>;
}
