import type { Stats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  CheckpointKeyError,
  type CheckpointKeys,
  parseCheckpointPublicKeys,
} from "../../../audit/checkpoint-key.js";
import { NOT_A_FILE, openRegularFile } from "../../../audit/regular-file.js";
import { type AuditVerifyResult, verifyAuditLog } from "../../../audit/verify-log.js";
import { type Command, EXIT, UsageError } from "../../command.js";
import { parseCommandLine, printJson } from "../client-context.js";
import { createProgressBar } from "./progress-bar.js";

const DEFAULT_DATA_DIR = ".writ";

const HELP = `
Usage: writ audit verify [log-dir] [--data-dir <dir>] [--checkpoint-key <file|jwk>] [--json]

Checks an audit log offline: every entry's hash and link to the one before,
through every segment, and every signed checkpoint. Finds an edited, deleted,
inserted or reordered entry, a missing segment and a cut tail (the log must
reach its last signed checkpoint), and prints the first bad seq and why.

The log directory defaults to <data-dir>/audit.

Options:
  --data-dir <dir>           writ's data dir (default ${DEFAULT_DATA_DIR})
  --checkpoint-key <key>     The checkpoint public key: a file, or the JSON itself
                             (a JWK, a JWKS, or what GET /v1/audit/checkpoint-key
                             answers). Without it the key is read from
                             <data-dir>/keys/checkpoint.json, which proves less:
                             whoever can rewrite the log there may rewrite the key.
  --json                     Print the result as one JSON object, also when the
                             log or the key cannot be read:
                             {"ok":false,"error":{"code":…,"message":…},…}

Exit codes: 0 the log is intact; 1 it is not, or it could not be read; 2 bad
command line.
`;

/** Why `--json` could not report on the log at all, as `error.code`. */
type VerifyErrorCode = "audit_log_not_found" | "audit_log_unreadable" | "checkpoint_key_unusable";

/** A key is a few hundred bytes; a file larger than this is not one, and is not read on. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * The text of a key file, read up to {@link MAX_KEY_FILE_BYTES}. A key beside the
 * log comes with the files under review, which may hold anything: a FIFO (the read
 * would block until a writer came) or a link to a device (it would never end), so
 * it must be a regular file. A key named on the command line may be a pipe
 * (`--checkpoint-key <(curl …)`), so only its size is bounded.
 */
async function readKeyFile(path: string, regularOnly: boolean): Promise<string> {
  const handle = regularOnly ? await openRegularFile(path) : await open(path, "r");
  if (handle === NOT_A_FILE) throw new CheckpointKeyError(`${path} is not a regular file`);
  try {
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled > MAX_KEY_FILE_BYTES) {
      throw new CheckpointKeyError(
        `${path} is too large to be a key (over ${MAX_KEY_FILE_BYTES} bytes)`,
      );
    }
    return buffer.toString("utf8", 0, filled);
  } finally {
    await handle.close();
  }
}

async function loadKeys(
  option: string | undefined,
  dataDir: string,
): Promise<{ keys: CheckpointKeys; source: string; pinned: boolean }> {
  if (option !== undefined) {
    if (option.trimStart().startsWith("{")) {
      return {
        keys: parseCheckpointPublicKeys(option, "--checkpoint-key"),
        source: "--checkpoint-key",
        pinned: true,
      };
    }
    const text = await readKeyFile(option, false).catch((error: NodeJS.ErrnoException) => {
      if (error instanceof CheckpointKeyError) throw error;
      throw new CheckpointKeyError(`cannot read ${option} (${error.code ?? "error"})`);
    });
    return { keys: parseCheckpointPublicKeys(text, option), source: option, pinned: true };
  }
  const path = join(dataDir, "keys", "checkpoint.json");
  const text = await readKeyFile(path, true).catch((error: NodeJS.ErrnoException) => {
    if (error instanceof CheckpointKeyError) throw error;
    throw new CheckpointKeyError(
      error.code === "ENOENT"
        ? `no checkpoint key at ${path}; pass --checkpoint-key`
        : `cannot read ${path} (${error.code ?? "error"})`,
    );
  });
  return { keys: parseCheckpointPublicKeys(text, path), source: path, pinned: false };
}

/** What went wrong reading, in one line: the file and the system's code, never a stack. */
function readFailure(error: unknown): string {
  const { code, path, message } = error as NodeJS.ErrnoException;
  if (typeof code === "string" && typeof path === "string") return `cannot read ${path} (${code})`;
  return message;
}

export const auditVerifyCommand: Command = {
  path: ["audit", "verify"],
  summary: "Check an audit log offline: hashes, links, signed checkpoints",
  help: HELP,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: {
          "data-dir": { type: "string" },
          "checkpoint-key": { type: "string" },
          json: { type: "boolean", default: false },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
    const dataDir = values["data-dir"] ?? DEFAULT_DATA_DIR;
    const dir = resolve(positionals[0] ?? join(dataDir, "audit"));
    // A script reading --json gets one JSON object whatever happens, never nothing.
    const fail = (code: VerifyErrorCode, message: string, more: object = {}): number => {
      if (values.json) printJson(io, { ok: false, error: { code, message }, dir, ...more });
      else io.stderr(`writ audit verify: ${message}\n`);
      return EXIT.failed;
    };
    let info: Stats;
    try {
      info = await stat(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return code === "ENOENT" || code === "ENOTDIR"
        ? fail("audit_log_not_found", `no audit log at ${dir}`)
        : fail("audit_log_unreadable", readFailure(error));
    }
    if (!info.isDirectory()) {
      throw new UsageError(`${dir} is a file; give the log directory (segments and checkpoints)`);
    }
    let key: Awaited<ReturnType<typeof loadKeys>>;
    try {
      key = await loadKeys(values["checkpoint-key"], dataDir);
    } catch (error) {
      if (!(error instanceof CheckpointKeyError)) throw error;
      return fail("checkpoint_key_unusable", error.message);
    }
    const keyFields = { checkpoint_key: key.source, pinned_key: key.pinned };
    if (!key.pinned && !values.json) {
      io.stderr(
        `note: checkpoint key read from ${key.source}, beside the log; pin a copy kept elsewhere with --checkpoint-key\n`,
      );
    }
    const bar = createProgressBar(io, "verifying");
    const started = performance.now();
    let result: AuditVerifyResult;
    try {
      result = await verifyAuditLog({
        dir,
        keys: key.keys,
        onProgress: (done, total) =>
          bar.update(
            total === 0 ? 1 : done / total,
            `${(done / 1e6).toFixed(0)} / ${(total / 1e6).toFixed(0)} MB`,
          ),
      });
    } catch (error) {
      return fail("audit_log_unreadable", readFailure(error), keyFields);
    } finally {
      bar.done();
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (values.json) {
      printJson(io, { ...result, dir, ...keyFields });
    } else if (result.ok) {
      const cp = result.lastCheckpoint;
      io.stdout(
        `ok: ${result.entries} entries in ${result.segments} segment(s), ${result.checkpoints} signed checkpoint(s); the last covers seq ${cp.seq} (${cp.time}, key ${cp.key_id}); ${seconds} s\n`,
      );
    } else {
      const where =
        result.segment !== undefined ? ` (${result.segment}, line ${result.line ?? "?"})` : "";
      io.stdout(
        `NOT INTACT: first bad seq ${result.firstBadSeq}${where}: ${result.reason}\n${result.entries} entries verified before it.\n`,
      );
    }
    return result.ok ? EXIT.ok : EXIT.failed;
  },
};
