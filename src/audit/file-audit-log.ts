import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { access, mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { AuditLog } from "../ports/audit-log.js";
import { type Clock, systemClock } from "../ports/clock.js";
import {
  type Checkpoint,
  checkpointLineFault,
  checkpointMessage,
  readCheckpoint,
  serializeCheckpoint,
} from "./checkpoint.js";
import type { CheckpointSigner } from "./checkpoint-key.js";
import type { LogEntry } from "./log-entry.js";
import { entryLineFault, GENESIS_HASH, readLogEntry, toEntryLine } from "./log-entry.js";
import {
  CHECKPOINT_FILE,
  listSegments,
  missingSegment,
  type Segment,
  SegmentLayoutError,
  segmentName,
  syncDirectory,
  UNSEGMENTED_FILE,
} from "./segments.js";
import { cutTornTail, damagedTail, type RecoveredTail, recoverTail } from "./tail-recovery.js";
import {
  type AuditLogRepair,
  mergeRepairs,
  readUnrecordedRepair,
  removeUnrecordedRepair,
  writeUnrecordedRepair,
} from "./unrecorded-repair.js";
import { acquireWriterLock, type ReleaseLock } from "./writer-lock.js";

/** How checkpoints are made; without it the log writes none (tests of the chain alone). */
export interface CheckpointOptions {
  readonly signer: CheckpointSigner;
  /** A checkpoint after this many new entries (default 1,000). */
  readonly everyEntries?: number;
  /** A checkpoint this often while there are new entries (default 60). */
  readonly everySeconds?: number;
  /**
   * Runs `tick` every `intervalMs` until the returned function is called. Defaults
   * to an unref'd `setInterval`; tests pass their own and tick by hand.
   */
  readonly schedule?: (intervalMs: number, tick: () => void) => () => void;
  /** Called after each checkpoint is durable: an outside witness (the service log). */
  readonly onCheckpoint?: (checkpoint: Checkpoint) => void;
}

export interface FileAuditLogOptions {
  /** Directory holding the segments and checkpoints; created with mode 0700 if missing. */
  readonly dir: string;
  /** A new segment is started once the current one reaches this size (default 64 MiB). */
  readonly segmentMaxBytes?: number;
  readonly checkpoints?: CheckpointOptions;
  /** The time written in checkpoints (default: the system clock). */
  readonly clock?: Clock;
}

export type { AuditLogRepair } from "./unrecorded-repair.js";

/** The audit log kept as append-only JSON-lines segment files, with signed checkpoints. */
export interface FileAuditLog extends AuditLog {
  readonly dir: string;
  /** The segment being written now. */
  readonly path: string;
  /**
   * Set when opening found a torn final line (a crash mid-write) and truncated it,
   * now or at an earlier open whose repair was never recorded. The caller records
   * it as an event (the repair itself is evidence), then calls `repairRecorded`.
   */
  readonly repaired: AuditLogRepair | undefined;
  /**
   * Says that `repaired` is now an `audit.repaired` entry of this log. Until this is
   * called, every open reports the repair again: the cut is durable at once, the
   * event that records it only once the stream has delivered it.
   */
  repairRecorded(): Promise<void>;
  /**
   * The `event_id` of the last entry when the log was opened: where a follower of
   * a persistent event stream resumes.
   */
  readonly tailEventIdAtOpen: string | undefined;
  /** The seq of the last entry known to be on disk (fsynced); 0 for an empty log. */
  lastSeq(): number;
  /** The hash of that entry; {@link GENESIS_HASH} for an empty log. */
  lastHash(): string;
  /** The last checkpoint written or found on open. */
  lastCheckpoint(): Checkpoint | undefined;
}

const DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_CHECKPOINT_ENTRIES = 1000;
const DEFAULT_CHECKPOINT_SECONDS = 60;

/**
 * Opens (creating if needed) the audit log in `dir` and continues its chain from the
 * last entry. A torn final line left by a crash (in the last segment or in the
 * checkpoint file) is truncated away and reported in `repaired`. Damage that a crash
 * cannot cause fails with `audit_unavailable` and changes nothing: a whole last entry
 * that does not verify, a missing segment, or a log that ends before its last signed
 * checkpoint (entries were removed).
 *
 * One process owns the directory (a lock file in it says which): two writers would
 * fork the chain. With checkpoints, one is written at once if the log has entries no
 * checkpoint covers yet (or none at all), so every log writ has opened is signed.
 */
export async function openFileAuditLog(options: FileAuditLogOptions): Promise<FileAuditLog> {
  const { dir } = options;
  const segmentMaxBytes = options.segmentMaxBytes ?? DEFAULT_SEGMENT_MAX_BYTES;
  if (!Number.isSafeInteger(segmentMaxBytes) || segmentMaxBytes < 1) {
    throw new TypeError("segmentMaxBytes must be a positive integer");
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const release = await acquireWriterLock(join(dir, "writer.lock"));
  const handles: FileHandle[] = [];
  try {
    if (await exists(join(dir, UNSEGMENTED_FILE))) {
      throw new WritError(
        "audit_unavailable",
        `The audit directory holds ${UNSEGMENTED_FILE}, a log from before segments: rename it to ${segmentName(1)}.`,
      );
    }
    const tail = await recoverLogTail(dir);
    const checkpointPath = join(dir, CHECKPOINT_FILE);
    const checkpoints = await recoverTail(checkpointPath, acceptCheckpoint, {
      repair: true,
      what: "checkpoint file's last line",
    });
    assertCoveredByLog(checkpoints.last, tail);
    const segment = tail.segment;
    const cut: AuditLogRepair | undefined =
      tail.torn.droppedBytes > 0 || checkpoints.droppedBytes > 0
        ? {
            ...(tail.torn.droppedBytes > 0 ? { segment: segment.name } : {}),
            droppedBytes: tail.torn.droppedBytes,
            checkpointDroppedBytes: checkpoints.droppedBytes,
          }
        : undefined;
    const repaired = mergeRepairs(await readUnrecordedRepair(dir), cut);
    // Only now, with the log known to reach its last checkpoint, are torn tails cut
    // (a log refused above keeps every byte for whoever investigates it), and only
    // once a note of the cut is durable: the cut must not outlive its record.
    if (cut !== undefined && repaired !== undefined) {
      await writeUnrecordedRepair(dir, repaired);
      await cutTornTail(segment.path, tail.torn);
      await cutTornTail(checkpointPath, checkpoints);
    }
    const handle = await open(segment.path, SEGMENT_APPEND, 0o600);
    handles.push(handle);
    const size = (await handle.stat()).size;
    let checkpointHandle: FileHandle | undefined;
    if (options.checkpoints !== undefined) {
      checkpointHandle = await open(join(dir, CHECKPOINT_FILE), "a", 0o600);
      handles.push(checkpointHandle);
    }
    // New files' directory entries must be durable too, or a crash could lose them.
    await syncDirectory(dir);
    const log = new SegmentedFileLog({
      dir,
      segment,
      handle,
      segmentBytes: size,
      segmentMaxBytes,
      tail,
      repaired,
      release,
      checkpointHandle,
      lastCheckpoint: checkpoints.last,
      checkpointOptions: options.checkpoints,
      clock: options.clock ?? systemClock,
    });
    await log.start();
    return log;
  } catch (error) {
    for (const handle of handles) await handle.close().catch(() => {});
    await release();
    if (error instanceof SegmentLayoutError) {
      throw new WritError("audit_unavailable", `The audit log is damaged: ${error.message}.`);
    }
    throw error;
  }
}

interface Tail {
  readonly seq: number;
  readonly hash: string;
  readonly eventId: string | undefined;
  /** The segment to append to. */
  readonly segment: Segment;
  /** What to cut from the end of that segment. */
  readonly torn: RecoveredTail<LogEntry>;
}

/** The entry on `line`, if its hash holds and the line is exactly the one writ writes. */
function acceptEntry(parsed: unknown, line: string): LogEntry | string {
  const entry = readLogEntry(parsed);
  if (typeof entry === "string") return entry;
  return entryLineFault(entry, line) ?? entry;
}

/** The checkpoint on `line`, if well formed and exactly the line writ writes. */
function acceptCheckpoint(parsed: unknown, line: string): Checkpoint | string {
  const cp = readCheckpoint(parsed);
  if (typeof cp === "string") return cp;
  return checkpointLineFault(cp, line) ?? cp;
}

/**
 * Finds where the chain continues, reading only the tail; a torn write is found, not
 * yet cut. Only the last segment can hold a torn write (earlier ones were complete
 * and fsynced before the next began); if it is empty once cut, the chain continues
 * from the last entry of the one before.
 */
async function recoverLogTail(dir: string): Promise<Tail> {
  const segments = await listSegments(dir);
  const gap = missingSegment(segments);
  if (gap !== undefined) throw new SegmentLayoutError(`segment ${gap} is missing`);
  const current = segments.at(-1) ?? {
    index: 1,
    name: segmentName(1),
    path: join(dir, segmentName(1)),
  };
  const what = (segment: Segment) => `log's last entry (${segment.name})`;
  const recovered = await recoverTail(current.path, acceptEntry, {
    repair: true,
    what: what(current),
  });
  let last = recovered.last;
  for (let i = segments.length - 2; last === undefined && i >= 0; i--) {
    const earlier = segments[i] as Segment;
    last = (await recoverTail(earlier.path, acceptEntry, { repair: false, what: what(earlier) }))
      .last;
  }
  return {
    seq: last?.seq ?? 0,
    hash: last?.hash ?? GENESIS_HASH,
    eventId: last?.event_id,
    segment: current,
    torn: recovered,
  };
}

/**
 * A checkpoint is written only after the entries it covers are fsynced, so on a log
 * that was only ever appended to, the last checkpoint is at or before the last entry.
 */
function assertCoveredByLog(checkpoint: Checkpoint | undefined, tail: Tail): void {
  if (checkpoint === undefined) return;
  if (checkpoint.seq > tail.seq) {
    throw damagedTail(
      "log",
      `it ends at seq ${tail.seq} but a signed checkpoint covers seq ${checkpoint.seq}: entries were removed`,
    );
  }
  if (checkpoint.seq === tail.seq && checkpoint.hash !== tail.hash) {
    throw damagedTail("log", `entry ${tail.seq} differs from its signed checkpoint`);
  }
}

interface PendingAppend {
  readonly text: string;
  readonly seq: number;
  readonly hash: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface LogState {
  readonly dir: string;
  readonly segment: Segment;
  readonly handle: FileHandle;
  readonly segmentBytes: number;
  readonly segmentMaxBytes: number;
  readonly tail: Tail;
  readonly repaired: AuditLogRepair | undefined;
  readonly release: ReleaseLock;
  readonly checkpointHandle: FileHandle | undefined;
  readonly lastCheckpoint: Checkpoint | undefined;
  readonly checkpointOptions: CheckpointOptions | undefined;
  readonly clock: Clock;
}

/**
 * Group commit: one write and one fdatasync run at a time. Appends that arrive while
 * one is in flight queue up and go out together in the next write, in call order, so
 * many concurrent callers share one fsync instead of each paying for their own.
 * Rotation and checkpoints happen in the same loop, between batches, so they never
 * interleave with a write.
 */
class SegmentedFileLog implements FileAuditLog {
  readonly dir: string;
  readonly repaired: AuditLogRepair | undefined;
  readonly tailEventIdAtOpen: string | undefined;
  #segment: Segment;
  #handle: FileHandle;
  #segmentBytes: number;
  readonly #segmentMaxBytes: number;
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
  readonly #checkpointHandle: FileHandle | undefined;
  readonly #checkpoints: CheckpointOptions | undefined;
  readonly #clock: Clock;
  #lastCheckpoint: Checkpoint | undefined;
  #checkpointDue = false;
  #stopTimer: (() => void) | undefined;

  constructor(state: LogState) {
    this.dir = state.dir;
    this.repaired = state.repaired;
    this.tailEventIdAtOpen = state.tail.eventId;
    this.#segment = state.segment;
    this.#handle = state.handle;
    this.#segmentBytes = state.segmentBytes;
    this.#segmentMaxBytes = state.segmentMaxBytes;
    this.#assignedSeq = this.#durableSeq = state.tail.seq;
    this.#assignedHash = this.#durableHash = state.tail.hash;
    this.#release = state.release;
    this.#checkpointHandle = state.checkpointHandle;
    this.#checkpoints = state.checkpointOptions;
    this.#clock = state.clock;
    this.#lastCheckpoint = state.lastCheckpoint;
  }

  get path(): string {
    return this.#segment.path;
  }

  /** Signs what opening found, if no checkpoint covers it yet, and starts the timer. */
  async start(): Promise<void> {
    if (this.#checkpoints === undefined) return;
    if (this.#uncheckpointed()) await this.#writeCheckpoint();
    const everySeconds = this.#checkpoints.everySeconds ?? DEFAULT_CHECKPOINT_SECONDS;
    const schedule = this.#checkpoints.schedule ?? defaultSchedule;
    this.#stopTimer = schedule(everySeconds * 1000, () => {
      if (this.#closing !== undefined || this.#failed || !this.#uncheckpointed()) return;
      this.#checkpointDue = true;
      this.#flushing ??= this.#flush();
    });
  }

  async repairRecorded(): Promise<void> {
    if (this.repaired !== undefined) await removeUnrecordedRepair(this.dir);
  }

  lastSeq(): number {
    return this.#durableSeq;
  }

  lastHash(): string {
    return this.#durableHash;
  }

  lastCheckpoint(): Checkpoint | undefined {
    return this.#lastCheckpoint;
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
        const { entry, line } = toEntryLine(event, seq + 1, hash);
        text += `${line}\n`;
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
    this.#stopTimer?.();
    // Appends queued before close still get written: their callers are waiting on them.
    await this.#flushing;
    try {
      if (!this.#failed && this.#checkpoints !== undefined && this.#uncheckpointed()) {
        await this.#writeCheckpoint().catch(() => {
          // Nothing is waiting on it; the log verifies up to the previous checkpoint.
          this.#failed = true;
        });
      }
    } finally {
      await this.#handle.close();
      await this.#checkpointHandle?.close();
      await this.#release();
    }
  }

  #uncheckpointed(): boolean {
    const last = this.#lastCheckpoint;
    return last === undefined || this.#durableSeq > last.seq;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0 || this.#checkpointDue) {
        const batch = this.#queue;
        this.#queue = [];
        if (batch.length > 0) {
          const last = batch[batch.length - 1] as PendingAppend;
          const data = Buffer.from(batch.map((p) => p.text).join(""), "utf8");
          try {
            if (this.#segmentBytes >= this.#segmentMaxBytes) await this.#rotate();
            await writeAll(this.#handle, data);
            if (DSYNC === undefined) await this.#handle.datasync();
          } catch (cause) {
            this.#failClosed(batch, cause);
            return;
          }
          this.#segmentBytes += data.length;
          this.#durableSeq = last.seq;
          this.#durableHash = last.hash;
          for (const pending of batch) pending.resolve();
        }
        const everyEntries = this.#checkpoints?.everyEntries ?? DEFAULT_CHECKPOINT_ENTRIES;
        const sinceCheckpoint = this.#durableSeq - (this.#lastCheckpoint?.seq ?? 0);
        if (
          this.#checkpoints !== undefined &&
          (this.#checkpointDue || sinceCheckpoint >= everyEntries)
        ) {
          this.#checkpointDue = false;
          try {
            await this.#writeCheckpoint();
          } catch (cause) {
            this.#failClosed([], cause);
            return;
          }
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Starts the next segment; its directory entry is durable before anything is written to it. */
  async #rotate(): Promise<void> {
    const index = this.#segment.index + 1;
    const name = segmentName(index);
    const path = join(this.dir, name);
    // Exclusive: a file already there would be another writer's, or tampering.
    const next = await open(path, SEGMENT_NEW, 0o600);
    try {
      await syncDirectory(this.dir);
    } catch (error) {
      await next.close();
      throw error;
    }
    const previous = this.#handle;
    this.#handle = next;
    this.#segment = { index, name, path };
    this.#segmentBytes = 0;
    await previous.close();
  }

  /** Signs the durable tail and appends the checkpoint, fsynced. */
  async #writeCheckpoint(): Promise<void> {
    const options = this.#checkpoints;
    const handle = this.#checkpointHandle;
    if (options === undefined || handle === undefined) return;
    const seq = this.#durableSeq;
    const hash = this.#durableHash;
    const time = new Date(this.#clock.now()).toISOString();
    const checkpoint: Checkpoint = {
      seq,
      hash,
      time,
      key_id: options.signer.keyId,
      signature: options.signer.sign(checkpointMessage(seq, hash, time)),
    };
    await writeAll(handle, Buffer.from(`${serializeCheckpoint(checkpoint)}\n`, "utf8"));
    await handle.datasync();
    this.#lastCheckpoint = checkpoint;
    options.onCheckpoint?.(checkpoint);
  }

  /**
   * After a failed write or fsync the file's tail is unknown (part of the batch may be
   * on disk) and Linux may already have dropped the dirty pages, so retrying cannot be
   * trusted. Every waiting append fails and later ones are refused until the log is
   * reopened, which re-reads the tail and repairs a torn line.
   */
  #failClosed(batch: readonly PendingAppend[], cause: unknown): void {
    this.#failed = true;
    this.#stopTimer?.();
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

function defaultSchedule(intervalMs: number, tick: () => void): () => void {
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Segments are opened with O_DSYNC where the platform has it: a write returns
 * only once its data is on disk, so a batch costs one trip to the I/O thread
 * pool instead of a write and then an fdatasync. Elsewhere every batch is
 * followed by fdatasync. Either way a batch is durable before its callers hear.
 */
const DSYNC: number | undefined = constants.O_DSYNC;
const SEGMENT_APPEND =
  DSYNC === undefined ? "a" : constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | DSYNC;
const SEGMENT_NEW =
  DSYNC === undefined
    ? "wx"
    : constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | DSYNC;

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

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const { code } = error as { code: unknown };
    if (typeof code === "string") return code;
  }
  return undefined;
}
