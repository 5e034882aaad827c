import { isUtf8 } from "node:buffer";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { WritError } from "../domain/errors.js";

const NEWLINE = 0x0a;
const TAIL_CHUNK_BYTES = 64 * 1024;
/** Lines are small; a last line this long is damage, and must not exhaust memory. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface RecoveredTail<T> {
  /** The last whole line once the torn tail is cut, accepted; undefined when none is left. */
  readonly last: T | undefined;
  /** Bytes to cut from the end ({@link cutTornTail}); 0 when nothing was torn. */
  readonly droppedBytes: number;
  /** The file's length once they are cut. */
  readonly keptBytes: number;
}

/**
 * Reads the last line of an append-only JSON-lines file, past a torn write when
 * `repair` is set. Bytes after the last newline are a torn write, and so is a last
 * line that is not JSON (a crash can persist part of a write, or a zero-filled
 * region): both are to be cut, once `accept` has checked the line left last (given
 * both the parsed value and the line, so it can insist on the exact line it
 * writes). A last line that is JSON but not valid UTF-8, or that `accept` refuses
 * (it returns a reason), is damage, not a crash: `audit_unavailable` is thrown,
 * since appending to a damaged file would hide the damage. Without `repair`, any
 * torn tail is damage.
 *
 * Nothing is changed here: the caller cuts the torn tail with {@link cutTornTail}
 * only once it has checked what would be left against what else it knows (the
 * signed checkpoints), so a log it then refuses keeps every byte as evidence.
 */
export async function recoverTail<T>(
  path: string,
  accept: (parsed: unknown, line: string) => T | string,
  options: { repair: boolean; what: string },
): Promise<RecoveredTail<T>> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { last: undefined, droppedBytes: 0, keptBytes: 0 };
    }
    throw error;
  }
  try {
    const size = (await handle.stat()).size;
    let keep = size;
    if (size > 0 && (await readBytes(handle, size - 1, 1))[0] !== NEWLINE) {
      keep = await findLineStart(handle, size);
    }
    let parsed: unknown = NOT_JSON;
    let line: LastLine | undefined;
    if (keep > 0) {
      line = await readLastLine(handle, keep, options.what);
      parsed = parseJson(line.text);
      if (parsed === NOT_JSON) {
        keep = line.start;
        if (keep > 0) {
          line = await readLastLine(handle, keep, options.what);
          parsed = parseJson(line.text);
        }
      }
    }
    let last: T | undefined;
    if (keep > 0 && line !== undefined) {
      const accepted =
        parsed === NOT_JSON
          ? "malformed JSON"
          : // Decoding replaced invalid bytes with U+FFFD: other bytes, the same text.
            !line.utf8
            ? "invalid UTF-8"
            : accept(parsed, line.text);
      if (typeof accepted === "string") throw damagedTail(options.what, accepted);
      last = accepted;
    }
    if (keep !== size && !options.repair) throw damagedTail(options.what, "incomplete final line");
    return { last, droppedBytes: size - keep, keptBytes: keep };
  } finally {
    await handle.close();
  }
}

/** Cuts the torn tail {@link recoverTail} found, durably; nothing when there was none. */
export async function cutTornTail(path: string, tail: RecoveredTail<unknown>): Promise<void> {
  if (tail.droppedBytes === 0) return;
  const handle = await open(path, "r+");
  try {
    if ((await handle.stat()).size !== tail.keptBytes + tail.droppedBytes) {
      throw new Error("the audit log changed while its torn tail was being cut");
    }
    await handle.truncate(tail.keptBytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const NOT_JSON = Symbol("not JSON");

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

export function damagedTail(what: string, reason: string): WritError {
  return new WritError(
    "audit_unavailable",
    `The audit ${what} is damaged (${reason}); verify the log before appending.`,
    { reason },
  );
}

interface LastLine {
  readonly start: number;
  readonly text: string;
  /** Whether the bytes were valid UTF-8; `text` is their lenient decoding either way. */
  readonly utf8: boolean;
}

/** The line ending with the newline at `end - 1`, without that newline. */
async function readLastLine(handle: FileHandle, end: number, what: string): Promise<LastLine> {
  const start = await findLineStart(handle, end - 1);
  const length = end - 1 - start;
  if (length > MAX_LINE_BYTES) throw damagedTail(what, "line too long");
  const bytes = await readBytes(handle, start, length);
  return { start, text: bytes.toString("utf8"), utf8: isUtf8(bytes) };
}

/** The offset just past the last newline before `end`, or 0 if there is none. */
async function findLineStart(handle: FileHandle, end: number): Promise<number> {
  let position = end;
  while (position > 0) {
    const from = Math.max(0, position - TAIL_CHUNK_BYTES);
    const chunk = await readBytes(handle, from, position - from);
    const newline = chunk.lastIndexOf(NEWLINE);
    if (newline !== -1) return from + newline + 1;
    position = from;
  }
  return 0;
}

async function readBytes(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let offset = 0;
  while (offset < length) {
    const { bytesRead } = await handle.read(buffer, offset, length - offset, position + offset);
    if (bytesRead === 0) throw new Error("the audit log shrank while it was being read");
    offset += bytesRead;
  }
  return buffer;
}
