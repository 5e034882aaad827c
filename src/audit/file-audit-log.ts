import type { FileHandle } from "node:fs/promises";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { AuditLog } from "../ports/audit-log.js";
import type { LogEntry } from "./log-entry.js";
import { entryHash, GENESIS_HASH, readLogEntry, serializeEntry, toEntry } from "./log-entry.js";
import { acquireWriterLock, type ReleaseLock } from "./writer-lock.js";

export interface FileAuditLogOptions {
  /** Directory holding the log; created with mode 0700 if missing. */
  readonly dir: string;
  /** The log's file name inside `dir` (not a path). Defaults to `audit.jsonl`. */
  readonly fileName?: string;
}

/** What opening the log cut from the end of the file to remove a torn write. */
export interface AuditLogRepair {
  readonly droppedBytes: number;
}

/** The audit log kept in one append-only JSON-lines file. */
export interface FileAuditLog extends AuditLog {
  readonly path: string;
  /**
   * Set when opening found a torn final line (a crash mid-write) and truncated it.
   * The caller should record that as an event: the repair itself is evidence.
   */
  readonly repaired: AuditLogRepair | undefined;
  /**
   * The `event_id` of the last entry when the log was opened: where a follower of
   * a persistent event stream resumes.
   */
  readonly tailEventIdAtOpen: string | undefined;
  /** The seq of the last entry known to be on disk (fsynced); 0 for an empty log. */
  lastSeq(): number;
  /** The hash of that entry; {@link GENESIS_HASH} for an empty log. */
  lastHash(): string;
}

const DEFAULT_FILE_NAME = "audit.jsonl";
const NEWLINE = 0x0a;
const TAIL_CHUNK_BYTES = 64 * 1024;
/** Entries are small; a last line this long is damage, and must not exhaust memory. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Opens (creating if needed) the audit log file and continues its chain from the last
 * entry. A torn final line left by a crash is truncated away and reported in
 * `repaired`. A last entry that is whole but invalid is not repaired: opening fails
 * with `audit_unavailable`, since appending to a damaged log would hide the damage.
 *
 * One process owns the file (a lock file beside it says which): two writers would
 * fork the chain.
 */
export async function openFileAuditLog(options: FileAuditLogOptions): Promise<FileAuditLog> {
  const fileName = options.fileName ?? DEFAULT_FILE_NAME;
  if (!isFileName(fileName)) {
    throw new TypeError("fileName must be a plain file name, not a path");
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const path = join(options.dir, fileName);
  const release = await acquireWriterLock(`${path}.lock`);
  try {
    const tail = await recoverTail(path);
    const handle = await open(path, "a", 0o600);
    try {
      // The new file's directory entry must be durable too, or a crash could lose the file.
      await syncDirectory(options.dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return new AppendOnlyFileLog(path, handle, tail, release);
  } catch (error) {
    await release();
    throw error;
  }
}

interface Tail {
  readonly seq: number;
  readonly hash: string;
  readonly eventId: string | undefined;
  readonly repaired: AuditLogRepair | undefined;
}

interface PendingAppend {
  readonly text: string;
  readonly seq: number;
  readonly hash: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Group commit: one write and one fdatasync run at a time. Appends that arrive while
 * one is in flight queue up and go out together in the next write, in call order, so
 * many concurrent callers share one fsync instead of each paying for their own.
 */
class AppendOnlyFileLog implements FileAuditLog {
  readonly path: string;
  readonly repaired: AuditLogRepair | undefined;
  readonly tailEventIdAtOpen: string | undefined;
  readonly #handle: FileHandle;
  /** Seq and hash of the last entry handed out (queued or written). */
  #assignedSeq: number;
  #assignedHash: string;
  /** Seq and hash of the last entry fsynced. */
  #durableSeq: number;
  #durableHash: string;
  #queue: PendingAppend[] = [];
  #flushing: Promise<void> | undefined;
  #failed = false;
  #closing: Promise<void> | undefined;

  readonly #release: ReleaseLock;

  constructor(path: string, handle: FileHandle, tail: Tail, release: ReleaseLock) {
    this.path = path;
    this.#release = release;
    this.repaired = tail.repaired;
    this.tailEventIdAtOpen = tail.eventId;
    this.#handle = handle;
    this.#assignedSeq = this.#durableSeq = tail.seq;
    this.#assignedHash = this.#durableHash = tail.hash;
  }

  lastSeq(): number {
    return this.#durableSeq;
  }

  lastHash(): string {
    return this.#durableHash;
  }

  append(events: readonly RecordedEvent[]): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new WritError("audit_unavailable", "the audit log is closed"));
    }
    if (this.#failed) return Promise.reject(unavailableAfterFailure());
    if (events.length === 0) return Promise.resolve();
    // Seq and prev are assigned now, synchronously, which is what fixes call order.
    // They are committed only once every event of the call converted, so a bad event
    // rejects its own call without leaving a hole in the chain.
    let seq = this.#assignedSeq;
    let hash = this.#assignedHash;
    let text = "";
    try {
      for (const event of events) {
        const entry: LogEntry = toEntry(event, seq + 1, hash);
        text += `${serializeEntry(entry)}\n`;
        seq = entry.seq;
        hash = entry.hash;
      }
    } catch (error) {
      return Promise.reject(error);
    }
    this.#assignedSeq = seq;
    this.#assignedHash = hash;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ text, seq, hash, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  writable(): boolean {
    return !this.#failed && this.#closing === undefined;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Appends queued before close still get written: their callers are waiting on them.
    await this.#flushing;
    await this.#handle.close();
    await this.#release();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        const last = batch[batch.length - 1] as PendingAppend;
        try {
          await writeAll(this.#handle, Buffer.from(batch.map((p) => p.text).join(""), "utf8"));
          await this.#handle.datasync();
        } catch (cause) {
          this.#failClosed(batch, cause);
          return;
        }
        this.#durableSeq = last.seq;
        this.#durableHash = last.hash;
        for (const pending of batch) pending.resolve();
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /**
   * After a failed write or fsync the file's tail is unknown (part of the batch may be
   * on disk) and Linux may already have dropped the dirty pages, so retrying cannot be
   * trusted. Every waiting append fails and later ones are refused until the log is
   * reopened, which re-reads the tail and repairs a torn line.
   */
  #failClosed(batch: readonly PendingAppend[], cause: unknown): void {
    this.#failed = true;
    const code = errorCode(cause);
    const error = new WritError(
      "audit_unavailable",
      `writing the audit log failed${code === undefined ? "" : ` (${code})`}`,
    );
    const waiting = [...batch, ...this.#queue];
    this.#queue = [];
    for (const pending of waiting) pending.reject(error);
  }
}

function unavailableAfterFailure(): WritError {
  return new WritError(
    "audit_unavailable",
    "the audit log refuses appends after a failed write; reopen it",
  );
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, null);
    offset += bytesWritten;
  }
}

/**
 * Finds where the chain continues, reading only the tail. Bytes after the last newline
 * are a torn write, and so is a last line that is not JSON (a crash can persist part of
 * a write, or a zero-filled region): both are cut. The entry left last is checked in
 * full, hash included, before anything is truncated.
 */
async function recoverTail(path: string): Promise<Tail> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r+");
  } catch (error) {
    if (errorCode(error) === "ENOENT") {
      return { seq: 0, hash: GENESIS_HASH, eventId: undefined, repaired: undefined };
    }
    throw error;
  }
  try {
    const size = (await handle.stat()).size;
    let keep = size;
    if (size > 0 && (await readBytes(handle, size - 1, 1))[0] !== NEWLINE) {
      keep = await findLineStart(handle, size);
    }
    let parsed: unknown;
    if (keep > 0) {
      let line = await readLastLine(handle, keep);
      parsed = parseJson(line.text);
      if (parsed === NOT_JSON) {
        keep = line.start;
        if (keep > 0) {
          line = await readLastLine(handle, keep);
          parsed = parseJson(line.text);
        }
      }
    }
    let seq = 0;
    let hash = GENESIS_HASH;
    let eventId: string | undefined;
    if (keep > 0) {
      const entry = lastEntryOrThrow(parsed);
      seq = entry.seq;
      hash = entry.hash;
      eventId = entry.event_id;
    }
    if (keep === size) return { seq, hash, eventId, repaired: undefined };
    await handle.truncate(keep);
    await handle.sync();
    return { seq, hash, eventId, repaired: { droppedBytes: size - keep } };
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

function lastEntryOrThrow(parsed: unknown): LogEntry {
  const entry = parsed === NOT_JSON ? "malformed JSON" : readLogEntry(parsed);
  if (typeof entry === "string") throw damagedTail(entry);
  let computed: string | undefined;
  try {
    computed = entryHash(entry);
  } catch {
    computed = undefined;
  }
  if (computed !== entry.hash) throw damagedTail("hash mismatch");
  return entry;
}

function damagedTail(reason: string): WritError {
  return new WritError(
    "audit_unavailable",
    `the audit log's last entry is damaged (${reason}); verify the log before appending`,
    { reason },
  );
}

/** The line ending with the newline at `end - 1`, without that newline. */
async function readLastLine(
  handle: FileHandle,
  end: number,
): Promise<{ start: number; text: string }> {
  const start = await findLineStart(handle, end - 1);
  const length = end - 1 - start;
  if (length > MAX_LINE_BYTES) throw damagedTail("line too long");
  return { start, text: (await readBytes(handle, start, length)).toString("utf8") };
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

async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory to fsync it.
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isFileName(name: string): boolean {
  return name.length > 0 && name !== "." && name !== ".." && !/[/\\\0]/.test(name);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const { code } = error as { code: unknown };
    if (typeof code === "string") return code;
  }
  return undefined;
}
