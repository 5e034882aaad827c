import { open, readdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * The log is a run of segment files, `audit-000001.jsonl`, `audit-000002.jsonl`, …,
 * numbered from 1 without gaps. The chain runs through them: the first entry of a
 * segment links to the last entry of the one before. Rotating keeps each file a
 * size that can be copied, archived and inspected.
 */
const SEGMENT_NAME = /^audit-(\d{6,})\.jsonl$/;

/** The checkpoint file beside the segments. */
export const CHECKPOINT_FILE = "checkpoints.jsonl";

/** The name a log used before segments; a directory holding it is refused, not ignored. */
export const UNSEGMENTED_FILE = "audit.jsonl";

export interface Segment {
  /** 1 for the first segment. */
  readonly index: number;
  readonly name: string;
  readonly path: string;
}

/** The file name of segment `index`: six digits at least, so names sort as numbers. */
export function segmentName(index: number): string {
  if (!Number.isSafeInteger(index) || index < 1) {
    throw new TypeError("segment index must be a positive integer");
  }
  return `audit-${String(index).padStart(6, "0")}.jsonl`;
}

/**
 * The segments in `dir`, in order. Names that only look like segments (extra
 * leading zeros) are refused, so two files can never claim one index.
 * A missing directory reads as no segments.
 */
export async function listSegments(dir: string): Promise<Segment[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const segments: Segment[] = [];
  for (const name of names) {
    const match = SEGMENT_NAME.exec(name);
    if (match === null) continue;
    const index = Number(match[1]);
    if (!Number.isSafeInteger(index) || index < 1 || segmentName(index) !== name) {
      throw new SegmentLayoutError(`${name} is not a valid segment name`);
    }
    segments.push({ index, name, path: join(dir, name) });
  }
  return segments.sort((a, b) => a.index - b.index);
}

/** The segments do not run 1, 2, 3… (a whole file is missing), or a name is invalid. */
export class SegmentLayoutError extends Error {
  override readonly name = "SegmentLayoutError";
}

/** The first break in the numbering of `segments`, or undefined when they run 1, 2, 3…. */
export function missingSegment(segments: readonly Segment[]): string | undefined {
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as Segment;
    if (segment.index !== i + 1) return segmentName(i + 1);
  }
  return undefined;
}

/** Makes the directory's entries (files created, renamed or removed) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory to fsync it.
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
