import type { FileHandle } from "node:fs/promises";
import {
  type Checkpoint,
  checkpointLineFault,
  checkpointSignatureValid,
  readCheckpoint,
} from "./checkpoint.js";
import type { CheckpointKeys } from "./checkpoint-key.js";
import { GENESIS_HASH } from "./log-entry.js";

/** Why a line of `checkpoints.jsonl` is refused: the 1-based line and the seq it puts in doubt. */
export interface CheckpointFault {
  readonly line: number;
  readonly seq: number;
  readonly reason: string;
}

const READ_SIZE_BYTES = 64 << 10;
/**
 * A checkpoint line is under 300 bytes. A longer one is damage, and must not make the
 * reader hold more than this of it.
 */
const MAX_LINE_BYTES = 4096;
const NEWLINE = 0x0a;

/**
 * Reads `checkpoints.jsonl` a chunk at a time and checks each line as it comes: shape,
 * signature by a known key, exactly the line writ writes, seqs that never go back, one
 * hash per seq. The file grows for as long as the log does (years of checkpoints), so
 * it is never held whole: only the checkpoints the chain has yet to meet are kept, and
 * the chain asks for them a bounded run of entries at a time.
 */
export class CheckpointReader {
  readonly #handle: FileHandle | undefined;
  readonly #keys: CheckpointKeys;
  readonly #upToSeq: number | undefined;
  readonly #buffer = Buffer.allocUnsafe(READ_SIZE_BYTES);
  #start = 0;
  #end = 0;
  #line = 0;
  #ended = false;
  /** Read, and not yet met by the chain: seq ascending, one per seq, none at seq 0. */
  #pending: Checkpoint[] = [];
  #head = 0;
  /** Checkpoints accepted so far. */
  count = 0;
  /** The last checkpoint accepted. */
  last: Checkpoint | undefined;

  /** `handle` is the open checkpoint file, or undefined when there is none. */
  constructor(handle: FileHandle | undefined, keys: CheckpointKeys, upToSeq: number | undefined) {
    this.#handle = handle;
    this.#keys = keys;
    this.#upToSeq = upToSeq;
    if (handle === undefined) this.#ended = true;
  }

  /** The next checkpoint the chain will meet, if it has been read. */
  peek(): Checkpoint | undefined {
    return this.#pending[this.#head];
  }

  /** The chain has met the checkpoint {@link peek} gave. */
  pass(): void {
    this.#head++;
  }

  /**
   * Reads on until a checkpoint past `seq` has been read or the file ends, so that
   * every checkpoint up to `seq` is waiting for the chain.
   */
  async readThrough(seq: number): Promise<CheckpointFault | undefined> {
    this.#pending = this.#pending.slice(this.#head);
    this.#head = 0;
    while (!this.#ended && (this.last?.seq ?? -1) <= seq) {
      const fault = await this.#readOne(true);
      if (fault !== undefined) return fault;
    }
    return undefined;
  }

  /** Reads and checks the rest of the file, keeping only its last checkpoint. */
  async readToEnd(): Promise<CheckpointFault | undefined> {
    this.#pending = [];
    this.#head = 0;
    while (!this.#ended) {
      const fault = await this.#readOne(false);
      if (fault !== undefined) return fault;
    }
    return undefined;
  }

  async #readOne(keep: boolean): Promise<CheckpointFault | undefined> {
    const next = await this.#nextLine();
    if (next === undefined) {
      this.#ended = true;
      return undefined;
    }
    this.#line++;
    const afterLast = (this.last?.seq ?? 0) + 1;
    if (typeof next !== "string") {
      // A live writer may be half-way through its last line; offline, a torn line is damage.
      if (next === TORN && this.#upToSeq !== undefined) {
        this.#ended = true;
        return undefined;
      }
      return this.#fault(
        afterLast,
        next === TORN ? "incomplete final line (no newline)" : "line too long",
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(next);
    } catch {
      return this.#fault(afterLast, "malformed JSON");
    }
    const cp = readCheckpoint(parsed);
    if (typeof cp === "string") return this.#fault(afterLast, cp);
    if (this.#upToSeq !== undefined && cp.seq > this.#upToSeq) {
      this.#ended = true;
      return undefined;
    }
    const key = this.#keys.get(cp.key_id);
    if (key === undefined) return this.#fault(cp.seq, `signed by an unknown key (${cp.key_id})`);
    if (!checkpointSignatureValid(cp, key)) {
      return this.#fault(cp.seq, "the signature does not verify");
    }
    const lineFault = checkpointLineFault(cp, next);
    if (lineFault !== undefined) return this.#fault(cp.seq, lineFault);
    const previous = this.last;
    if (previous !== undefined && cp.seq < previous.seq) {
      return this.#fault(cp.seq, `seq goes back from ${previous.seq}`);
    }
    if (previous !== undefined && cp.seq === previous.seq && cp.hash !== previous.hash) {
      return this.#fault(cp.seq, "two checkpoints give this seq different hashes");
    }
    if (cp.seq === 0 && cp.hash !== GENESIS_HASH) {
      return this.#fault(1, "the checkpoint of the empty log is not the genesis hash");
    }
    this.count++;
    this.last = cp;
    // A repeat of the seq before holds the same hash (checked above): the chain need
    // meet it once. Seq 0 names no entry.
    if (keep && cp.seq > 0 && cp.seq !== previous?.seq) this.#pending.push(cp);
    return undefined;
  }

  #fault(seq: number, reason: string): CheckpointFault {
    this.#ended = true;
    return { line: this.#line, seq, reason };
  }

  /** The next line without its newline, why there is none, or undefined at the end. */
  async #nextLine(): Promise<string | typeof TORN | typeof TOO_LONG | undefined> {
    const handle = this.#handle;
    if (handle === undefined) return undefined;
    for (;;) {
      const newline = this.#buffer.subarray(0, this.#end).indexOf(NEWLINE, this.#start);
      if (newline !== -1) {
        if (newline - this.#start > MAX_LINE_BYTES) return TOO_LONG;
        // A newline byte is never part of a multi-byte character, so decoding line by
        // line reads each line as decoding the whole file would.
        const line = this.#buffer.toString("utf8", this.#start, newline);
        this.#start = newline + 1;
        return line;
      }
      if (this.#end - this.#start > MAX_LINE_BYTES) return TOO_LONG;
      this.#end = this.#buffer.copy(this.#buffer, 0, this.#start, this.#end);
      this.#start = 0;
      const { bytesRead } = await handle.read(
        this.#buffer,
        this.#end,
        this.#buffer.length - this.#end,
        null,
      );
      if (bytesRead === 0) return this.#end > 0 ? TORN : undefined;
      this.#end += bytesRead;
    }
  }
}

const TORN = Symbol("torn");
const TOO_LONG = Symbol("too long");
