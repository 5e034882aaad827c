import { join } from "node:path";
import { WritError } from "../domain/errors.js";
import { type FileAuditLog, type FileAuditLogOptions, openFileAuditLog } from "./file-audit-log.js";

/** Most processes that may share one data dir's audit directory. */
const MAX_REPLICAS = 64;

/**
 * Opens this process's audit log under `dir`. The first process takes `dir`
 * itself; further processes sharing the data dir (replicas on one host) take
 * `dir/replicas/2`, `dir/replicas/3`, … — the first one no live process holds.
 * Each is a complete copy of the event stream and verifies on its own.
 */
export async function openReplicaLog(
  dir: string,
  options: Omit<FileAuditLogOptions, "dir"> = {},
): Promise<{ log: FileAuditLog; dir: string }> {
  for (let n = 1; n <= MAX_REPLICAS; n++) {
    const candidate = n === 1 ? dir : join(dir, "replicas", String(n));
    try {
      return { log: await openFileAuditLog({ ...options, dir: candidate }), dir: candidate };
    } catch (error) {
      if (error instanceof WritError && error.details?.locked_by !== undefined) continue;
      throw error;
    }
  }
  throw new WritError(
    "audit_unavailable",
    `More than ${MAX_REPLICAS} processes share this audit directory.`,
  );
}
