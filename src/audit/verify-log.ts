import { isUtf8 } from "node:buffer";
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Checkpoint } from "./checkpoint.js";
import type { CheckpointKeys } from "./checkpoint-key.js";
import { type CheckpointFault, CheckpointReader } from "./checkpoint-reader.js";
import { entryLineFault, GENESIS_HASH, readLogEntry } from "./log-entry.js";
import { NOT_A_FILE, openRegularFile } from "./regular-file.js";
import {
  CHECKPOINT_FILE,
  listSegments,
  missingSegment,
  type Segment,
  SegmentLayoutError,
} from "./segments.js";

/**
 * The outcome of checking an audit log file. On failure, `firstBadSeq` is the seq the
 * chain expected where it broke, `line` the 1-based line number there, and `entries`
 * how many entries before it verified.
 */
export type VerifyResult =
  | {
      readonly ok: true;
      readonly entries: number;
      /** 0 for an empty log. */
      readonly lastSeq: number;
      /** {@link GENESIS_HASH} for an empty log. */
      readonly lastHash: string;
    }
  | {
      readonly ok: false;
      readonly entries: number;
      readonly firstBadSeq: number;
      readonly line: number;
      readonly reason: string;
    };

/** The outcome of checking a whole log directory: segments and signed checkpoints. */
export type AuditVerifyResult =
  | {
      readonly ok: true;
      readonly entries: number;
      readonly lastSeq: number;
      readonly lastHash: string;
      readonly segments: number;
      readonly checkpoints: number;
      /** The last signed checkpoint: the log is proven complete up to its seq. */
      readonly lastCheckpoint: Checkpoint;
    }
  | {
      readonly ok: false;
      /** Entries that verified before the break. */
      readonly entries: number;
      /** The first seq that cannot be trusted. */
      readonly firstBadSeq: number;
      /** The segment and 1-based line where the break was found, when it is in one. */
      readonly segment?: string;
      readonly line?: number;
      readonly reason: string;
    };

export interface VerifyAuditLogOptions {
  /** The log directory (segments and `checkpoints.jsonl`). */
  readonly dir: string;
  /** Public keys allowed to have signed checkpoints. */
  readonly keys: CheckpointKeys;
  /**
   * Verify a log that is being written: stop after this seq (the writer's last
   * fsynced entry), ignore checkpoints past it and a checkpoint line being written.
   * The log must reach it: the writer fsynced every entry up to it.
   */
  readonly upToSeq?: number;
  /** Called as segments are read, with bytes done and bytes in all segments. */
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

const READ_SIZE_BYTES = 1 << 20;
/** Entries are small; a line this long is damage, not data, and must not exhaust memory. */
const MAX_LINE_BYTES = 64 << 20;
const NEWLINE = 0x0a;

type Failure = Extract<VerifyResult, { ok: false }>;
type AuditFailure = Extract<AuditVerifyResult, { ok: false }>;

/**
 * Checks every entry of the log file at `path` on its own: each line is a well-formed
 * entry, seqs run 1, 2, 3… without gaps, each `prev` is the previous entry's `hash`
 * (the genesis hash for the first), each `hash` matches the entry's content, and each
 * line is exactly the canonical line writ writes for its entry. Stops at the first
 * break. No checkpoints: for a whole log, use {@link verifyAuditLog}.
 */
export async function verifyLogFile(path: string): Promise<VerifyResult> {
  const chain = new ChainCheck(undefined, undefined);
  const failure = await readSegment(path, chain, { last: true, onBytes: () => {} });
  return failure ?? chain.result();
}

/**
 * Checks a whole log: every segment in order (the chain runs through them), every
 * checkpoint's signature against `keys`, that the entry each checkpoint names still
 * has that hash, and that the log does not end before its last checkpoint (a cut
 * tail). Reports the first seq that cannot be trusted and why. Segments and
 * checkpoints are streamed together, so neither one's size bounds memory.
 */
export async function verifyAuditLog(options: VerifyAuditLogOptions): Promise<AuditVerifyResult> {
  const handle = await openRegularFile(join(options.dir, CHECKPOINT_FILE)).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
      return undefined;
    },
  );
  if (handle === NOT_A_FILE) {
    return checkpointFailure({
      line: 1,
      seq: 1,
      reason: `${CHECKPOINT_FILE} is not a regular file`,
    });
  }
  try {
    return await verifySegments(
      options,
      new CheckpointReader(handle, options.keys, options.upToSeq),
    );
  } finally {
    await handle?.close();
  }
}

async function verifySegments(
  options: VerifyAuditLogOptions,
  checkpoints: CheckpointReader,
): Promise<AuditVerifyResult> {
  const { dir, upToSeq } = options;
  let segments: Segment[];
  try {
    segments = await listSegments(dir);
  } catch (error) {
    if (error instanceof SegmentLayoutError) {
      return { ok: false, entries: 0, firstBadSeq: 1, reason: error.message };
    }
    throw error;
  }
  const sizes = await Promise.all(segments.map(async (s) => (await stat(s.path)).size));
  const totalBytes = sizes.reduce((a, b) => a + b, 0);
  let doneBytes = 0;
  const chain = new ChainCheck(checkpoints, upToSeq);
  const gap = missingSegment(segments);
  for (const [i, segment] of segments.entries()) {
    if (gap !== undefined && segment.index !== i + 1) {
      return chain.failAt(`segment ${gap} is missing`);
    }
    chain.startSegment(segment.name);
    const failure = await readSegment(segment.path, chain, {
      last: i === segments.length - 1,
      onBytes: (n) => {
        doneBytes += n;
        options.onProgress?.(doneBytes, totalBytes);
      },
      // Before the chain checks a run of lines, every checkpoint it can meet there is read.
      beforeLines: (lines) => checkpoints.readThrough(chain.entries + lines),
    });
    if (failure !== undefined) {
      return "ok" in failure ? chain.located(failure) : checkpointFailure(failure);
    }
    if (chain.done) break;
  }
  const fault = await checkpoints.readToEnd();
  if (fault !== undefined) return checkpointFailure(fault);
  return chain.finish(segments.length);
}

function checkpointFailure({ line, seq, reason }: CheckpointFault): AuditFailure {
  return {
    ok: false,
    entries: Math.max(0, seq - 1),
    firstBadSeq: Math.max(1, seq),
    segment: CHECKPOINT_FILE,
    line,
    reason: `checkpoint: ${reason}`,
  };
}

/** Streams one segment through the chain check. */
async function readSegment<Fault = never>(
  path: string,
  chain: ChainCheck,
  options: {
    last: boolean;
    onBytes: (n: number) => void;
    /** Called before the chain checks up to `lines` more lines; a fault stops the read. */
    beforeLines?: (lines: number) => Promise<Fault | undefined>;
  },
): Promise<Failure | Fault | undefined> {
  const handle = await openRegularFile(path);
  if (handle === NOT_A_FILE) return chain.fail(`${basename(path)} is not a regular file`);
  try {
    let buffer = Buffer.allocUnsafe(READ_SIZE_BYTES);
    let filled = 0;
    for (;;) {
      if (filled === buffer.length) {
        if (buffer.length >= MAX_LINE_BYTES) return chain.fail("line too long");
        const bigger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(bigger, 0, 0, filled);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
      if (bytesRead === 0) break;
      options.onBytes(bytesRead);
      const end = filled + bytesRead;
      const lastNewline = buffer.lastIndexOf(NEWLINE, end - 1);
      if (lastNewline === -1) {
        filled = end;
        continue;
      }
      const failure = await acceptRun(buffer.subarray(0, lastNewline + 1), chain, options);
      if (failure !== undefined) return failure;
      if (chain.done) return undefined;
      filled = buffer.copy(buffer, 0, lastNewline + 1, end);
    }
    if (filled > 0) {
      return chain.fail(
        options.last
          ? "incomplete final line (no newline)"
          : "segment ends with an incomplete line",
      );
    }
    return undefined;
  } finally {
    await handle.close();
  }
}

/**
 * Lines at most in one call to the chain. The checkpoints it may meet in them are
 * read first, so this bounds how many are held however short the lines.
 */
const MAX_LINES_PER_RUN = 1024;

/** Checks a run of complete lines (`bytes` ends with a newline), a bounded run at a time. */
async function acceptRun<Fault>(
  bytes: Buffer,
  chain: ChainCheck,
  options: { beforeLines?: (lines: number) => Promise<Fault | undefined> },
): Promise<Failure | Fault | undefined> {
  if (options.beforeLines === undefined) return chain.acceptLines(bytes);
  let start = 0;
  while (start < bytes.length) {
    let end = start;
    let lines = 0;
    while (lines < MAX_LINES_PER_RUN && end < bytes.length) {
      end = bytes.indexOf(NEWLINE, end) + 1;
      lines++;
    }
    const failure =
      (await options.beforeLines(lines)) ?? chain.acceptLines(bytes.subarray(start, end));
    if (failure !== undefined || chain.done) return failure;
    start = end;
  }
  return undefined;
}

/** The chain state carried from line to line, and from segment to segment. */
class ChainCheck {
  #entries = 0;
  #lastHash = GENESIS_HASH;
  #segment: string | undefined;
  #segmentFirstSeq = 1;
  /** Where the checkpoints come from; none for a lone segment file. */
  readonly #checkpoints: CheckpointReader | undefined;
  /** The seq of the last checkpoint met, 0 before the first. */
  #checkpointSeq = 0;
  readonly #upToSeq: number | undefined;
  done = false;

  constructor(checkpoints: CheckpointReader | undefined, upToSeq: number | undefined) {
    this.#checkpoints = checkpoints;
    this.#upToSeq = upToSeq;
    if (upToSeq === 0) this.done = true;
  }

  /** Entries verified so far. */
  get entries(): number {
    return this.#entries;
  }

  startSegment(name: string): void {
    this.#segment = name;
    this.#segmentFirstSeq = this.#entries + 1;
  }

  /** Checks a run of complete lines (`bytes` ends with a newline). */
  acceptLines(bytes: Buffer): Failure | undefined {
    // One UTF-8 check and one decode for the whole run; the per-line path is only taken
    // to name the bad line. Decoding without the check would turn invalid bytes into
    // U+FFFD, letting different bytes verify as the same entry.
    if (!isUtf8(bytes)) return this.#acceptLinesOneByOne(bytes);
    const text = bytes.toString("utf8");
    let start = 0;
    for (;;) {
      const newline = text.indexOf("\n", start);
      if (newline === -1) return undefined;
      const failure = this.#acceptLine(text.slice(start, newline));
      if (failure !== undefined || this.done) return failure;
      start = newline + 1;
    }
  }

  fail(reason: string): Failure {
    return {
      ok: false,
      entries: this.#entries,
      firstBadSeq: this.#entries + 1,
      // Every line before the bad one held one good entry, so the counts agree.
      line: this.#entries + 2 - this.#segmentFirstSeq,
      reason,
    };
  }

  /** A failure not tied to a line of a segment. */
  failAt(reason: string): AuditFailure {
    return { ok: false, entries: this.#entries, firstBadSeq: this.#entries + 1, reason };
  }

  /** Names the segment of a failure; one found in an earlier segment names none. */
  located(failure: Failure): AuditFailure {
    const { ok: _ok, line, ...rest } = failure;
    if (line < 1 || this.#segment === undefined) return { ok: false, ...rest };
    return { ok: false, ...rest, segment: this.#segment, line };
  }

  result(): VerifyResult {
    return { ok: true, entries: this.#entries, lastSeq: this.#entries, lastHash: this.#lastHash };
  }

  finish(segments: number): AuditVerifyResult {
    const last = this.#checkpoints?.last;
    if (last === undefined) {
      return this.failAt(
        `no signed checkpoint (${CHECKPOINT_FILE} is missing or empty): the log's end cannot be proven`,
      );
    }
    if (this.#entries < last.seq) {
      return this.failAt(
        `the log ends at seq ${this.#entries} but a signed checkpoint covers seq ${last.seq}: its tail was cut`,
      );
    }
    // A live log's writer knows how far it has fsynced. Entries cut after its last
    // checkpoint leave no trace in the files, but they do leave one here.
    if (this.#upToSeq !== undefined && this.#entries < this.#upToSeq) {
      return this.failAt(
        `the log ends at seq ${this.#entries} but its writer has fsynced up to seq ${this.#upToSeq}: its tail was cut`,
      );
    }
    return {
      ok: true,
      entries: this.#entries,
      lastSeq: this.#entries,
      lastHash: this.#lastHash,
      segments,
      checkpoints: this.#checkpoints?.count ?? 0,
      lastCheckpoint: last,
    };
  }

  #acceptLinesOneByOne(bytes: Buffer): Failure | undefined {
    let start = 0;
    for (;;) {
      const newline = bytes.indexOf(NEWLINE, start);
      if (newline === -1) return undefined;
      const lineBytes = bytes.subarray(start, newline);
      if (!isUtf8(lineBytes)) return this.fail("invalid UTF-8");
      const failure = this.#acceptLine(lineBytes.toString("utf8"));
      if (failure !== undefined || this.done) return failure;
      start = newline + 1;
    }
  }

  #acceptLine(line: string): Failure | undefined {
    const expectedSeq = this.#entries + 1;
    if (line.length === 0) return this.fail("empty line");
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return this.fail("malformed JSON");
    }
    const entry = readLogEntry(parsed);
    if (typeof entry === "string") return this.fail(entry);
    if (entry.seq !== expectedSeq) {
      return this.fail(`seq ${expectedSeq} expected, found ${entry.seq}`);
    }
    if (entry.prev !== this.#lastHash) {
      return this.fail(
        expectedSeq === 1
          ? "prev of the first entry is not the genesis hash"
          : "prev does not match the previous entry's hash",
      );
    }
    const fault = entryLineFault(entry, line);
    if (fault !== undefined) return this.fail(fault);
    // The hash is now the one recomputed from the entry, not merely what the line says.
    const computed = entry.hash;
    const checkpoint = this.#checkpoints?.peek();
    if (checkpoint !== undefined && checkpoint.seq === expectedSeq) {
      if (checkpoint.hash !== computed) {
        // The chain holds, so everything since the previous checkpoint was rewritten
        // with fresh hashes: none of it can be trusted.
        const since = this.#checkpointSeq;
        return {
          ok: false,
          entries: since,
          firstBadSeq: since + 1,
          line: since + 2 - this.#segmentFirstSeq,
          reason: `entry ${expectedSeq} differs from its signed checkpoint: entries after seq ${since} were rewritten`,
        };
      }
      this.#checkpoints?.pass();
      this.#checkpointSeq = expectedSeq;
    }
    this.#entries = expectedSeq;
    this.#lastHash = computed;
    if (this.#upToSeq !== undefined && expectedSeq >= this.#upToSeq) this.done = true;
    return undefined;
  }
}
