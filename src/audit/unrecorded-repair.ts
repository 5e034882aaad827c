import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { WritError } from "../domain/errors.js";
import { syncDirectory } from "./segments.js";

/** What opening the log cut to remove torn writes left by a crash. */
export interface AuditLogRepair {
  /** The segment whose torn final line was cut, if one was (the last one cut). */
  readonly segment?: string;
  /** Bytes cut from that segment. */
  readonly droppedBytes: number;
  /** Bytes cut from the end of `checkpoints.jsonl`. */
  readonly checkpointDroppedBytes: number;
}

/**
 * The note, beside the segments, of a repair not yet recorded as an `audit.repaired`
 * event. A cut removes bytes for good, and the event that records it is written only
 * later, through the event stream: if writ stops in between (it crashes again, or
 * Redis refuses the event and the start fails), the next open finds nothing torn and
 * the repair would go unrecorded. The note is made durable before the cut and removed
 * once the event is in the log, so each open reports the repair until it is recorded.
 */
export const UNRECORDED_REPAIR_FILE = "unrecorded-repair.json";

/** The note's repair, or undefined when there is none. A note writ did not write is refused. */
export async function readUnrecordedRepair(dir: string): Promise<AuditLogRepair | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, UNRECORDED_REPAIR_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const repair = parseRepair(text);
  if (repair === undefined) {
    throw new WritError(
      "audit_unavailable",
      `The audit directory's ${UNRECORDED_REPAIR_FILE} is not one writ wrote; verify the log, then remove it.`,
    );
  }
  return repair;
}

function parseRepair(text: string): AuditLogRepair | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { segment, dropped_bytes, checkpoint_dropped_bytes } = value as Record<string, unknown>;
  if (!isByteCount(dropped_bytes) || !isByteCount(checkpoint_dropped_bytes)) return undefined;
  if (segment !== undefined && typeof segment !== "string") return undefined;
  return {
    ...(segment !== undefined ? { segment } : {}),
    droppedBytes: dropped_bytes,
    checkpointDroppedBytes: checkpoint_dropped_bytes,
  };
}

function isByteCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** One repair covering an unrecorded earlier one and a new cut: their bytes add up. */
export function mergeRepairs(
  earlier: AuditLogRepair | undefined,
  cut: AuditLogRepair | undefined,
): AuditLogRepair | undefined {
  if (earlier === undefined || cut === undefined) return earlier ?? cut;
  const segment = cut.segment ?? earlier.segment;
  return {
    ...(segment !== undefined ? { segment } : {}),
    droppedBytes: earlier.droppedBytes + cut.droppedBytes,
    checkpointDroppedBytes: earlier.checkpointDroppedBytes + cut.checkpointDroppedBytes,
  };
}

/** Writes the note durably (whole or not at all) before the cut it describes. */
export async function writeUnrecordedRepair(dir: string, repair: AuditLogRepair): Promise<void> {
  const path = join(dir, UNRECORDED_REPAIR_FILE);
  const temporary = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const text = `${JSON.stringify({
    ...(repair.segment !== undefined ? { segment: repair.segment } : {}),
    dropped_bytes: repair.droppedBytes,
    checkpoint_dropped_bytes: repair.checkpointDroppedBytes,
  })}\n`;
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
  await syncDirectory(dir);
}

/** Removes the note once its repair is recorded in the log. */
export async function removeUnrecordedRepair(dir: string): Promise<void> {
  try {
    await unlink(join(dir, UNRECORDED_REPAIR_FILE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  await syncDirectory(dir);
}
