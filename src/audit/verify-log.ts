import { isUtf8 } from "node:buffer";
import { open } from "node:fs/promises";
import { entryHash, GENESIS_HASH, readLogEntry } from "./log-entry.js";

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

const READ_SIZE_BYTES = 1 << 20;
/** Entries are small; a line this long is damage, not data, and must not exhaust memory. */
const MAX_LINE_BYTES = 64 << 20;
const NEWLINE = 0x0a;

/**
 * Checks every entry of the log file at `path`: each line is a well-formed entry, seqs
 * run 1, 2, 3… without gaps, each `prev` is the previous entry's `hash` (the genesis
 * hash for the first), and each `hash` matches the entry's content. Stops at the first
 * break. The file is streamed, so its size does not bound memory.
 *
 * A file whose last line has no newline is reported as broken: that is a torn write,
 * which opening the log for appends repairs.
 */
export async function verifyLogFile(path: string): Promise<VerifyResult> {
  const handle = await open(path, "r");
  try {
    const chain = new ChainCheck();
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
      const end = filled + bytesRead;
      const lastNewline = buffer.lastIndexOf(NEWLINE, end - 1);
      if (lastNewline === -1) {
        filled = end;
        continue;
      }
      const failure = chain.acceptLines(buffer.subarray(0, lastNewline + 1));
      if (failure !== undefined) return failure;
      filled = buffer.copy(buffer, 0, lastNewline + 1, end);
    }
    if (filled > 0) return chain.fail("incomplete final line (no newline)");
    return chain.result();
  } finally {
    await handle.close();
  }
}

type Failure = Extract<VerifyResult, { ok: false }>;

/** The chain state carried from line to line. */
class ChainCheck {
  #entries = 0;
  #lastHash = GENESIS_HASH;

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
      if (failure !== undefined) return failure;
      start = newline + 1;
    }
  }

  fail(reason: string): Failure {
    return {
      ok: false,
      entries: this.#entries,
      firstBadSeq: this.#entries + 1,
      // Every line before the bad one held one good entry, so the two counts agree.
      line: this.#entries + 1,
      reason,
    };
  }

  result(): VerifyResult {
    return { ok: true, entries: this.#entries, lastSeq: this.#entries, lastHash: this.#lastHash };
  }

  #acceptLinesOneByOne(bytes: Buffer): Failure | undefined {
    let start = 0;
    for (;;) {
      const newline = bytes.indexOf(NEWLINE, start);
      if (newline === -1) return undefined;
      const lineBytes = bytes.subarray(start, newline);
      if (!isUtf8(lineBytes)) return this.fail("invalid UTF-8");
      const failure = this.#acceptLine(lineBytes.toString("utf8"));
      if (failure !== undefined) return failure;
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
    let computed: string;
    try {
      computed = entryHash(entry);
    } catch {
      // Parsed JSON is always representable, except strings holding lone surrogates.
      return this.fail("entry is not canonicalizable");
    }
    if (computed !== entry.hash) return this.fail("hash mismatch");
    this.#entries = expectedSeq;
    this.#lastHash = computed;
    return undefined;
  }
}
