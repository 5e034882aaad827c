import { isUtf8 } from "node:buffer";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { WritError } from "../domain/errors.js";

const NEWLINE = 0x0a;
const TAIL_CHUNK_BYTES = 64 * 1024;
/** Lines are small; a last line this long is damage, and must not exhaust memory. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface RecoveredTail<T> {
  /** The last whole line, accepted; undefined when the file is (now) empty or missing. */
  readonly last: T | undefined;
  /** Bytes cut from the end; 0 when nothing was torn. */
  readonly droppedBytes: number;
}

/**
 * Reads the last line of an append-only JSON-lines file, cutting a torn write first
 * when `repair` is set. Bytes after the last newline are a torn write, and so is a
 * last line that is not JSON (a crash can persist part of a write, or a zero-filled
 * region): both are cut, after `accept` has checked the line left last (given both
 * the parsed value and the line, so it can insist on the exact line it writes). A
 * last line that is JSON but not valid UTF-8, or that `accept` refuses (it returns a
 * reason), is damage, not a crash: nothing is cut and `audit_unavailable` is thrown,
 * since appending to a damaged file would hide the damage. Without `repair`, any torn
 * tail is damage.
 */
export async function recoverTail<T>(
  path: string,
  accept: (parsed: unknown, line: string) => T | string,
  options: { repair: boolean; what: string },
): Promise<RecoveredTail<T>> {
  let handle: FileHandle;
  try {
    handle = await open(path, options.repair ? "r+" : "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { last: undefined, droppedBytes: 0 };
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
    if (keep === size) return { last, droppedBytes: 0 };
    if (!options.repair) throw damagedTail(options.what, "incomplete final line");
    await handle.truncate(keep);
    await handle.sync();
    return { last, droppedBytes: size - keep };
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
