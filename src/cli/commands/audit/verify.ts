import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  CheckpointKeyError,
  type CheckpointKeys,
  parseCheckpointPublicKeys,
} from "../../../audit/checkpoint-key.js";
import { verifyAuditLog } from "../../../audit/verify-log.js";
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
  --json                     Print the result as one JSON object

Exit codes: 0 the log is intact; 1 it is not, or it could not be read; 2 bad
command line.
`;

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
    const text = await readFile(option, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new CheckpointKeyError(`cannot read ${option} (${error.code ?? "error"})`);
    });
    return { keys: parseCheckpointPublicKeys(text, option), source: option, pinned: true };
  }
  const path = join(dataDir, "keys", "checkpoint.json");
  const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new CheckpointKeyError(
      error.code === "ENOENT"
        ? `no checkpoint key at ${path}; pass --checkpoint-key`
        : `cannot read ${path} (${error.code ?? "error"})`,
    );
  });
  return { keys: parseCheckpointPublicKeys(text, path), source: path, pinned: false };
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
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined) {
      io.stderr(`writ audit verify: no audit log at ${dir}\n`);
      return EXIT.failed;
    }
    if (!info.isDirectory()) {
      throw new UsageError(`${dir} is a file; give the log directory (segments and checkpoints)`);
    }
    let key: Awaited<ReturnType<typeof loadKeys>>;
    try {
      key = await loadKeys(values["checkpoint-key"], dataDir);
    } catch (error) {
      if (!(error instanceof CheckpointKeyError)) throw error;
      io.stderr(`writ audit verify: ${error.message}\n`);
      return EXIT.failed;
    }
    if (!key.pinned && !values.json) {
      io.stderr(
        `note: checkpoint key read from ${key.source}, beside the log; pin a copy kept elsewhere with --checkpoint-key\n`,
      );
    }
    const bar = createProgressBar(io, "verifying");
    const started = performance.now();
    const result = await verifyAuditLog({
      dir,
      keys: key.keys,
      onProgress: (done, total) =>
        bar.update(
          total === 0 ? 1 : done / total,
          `${(done / 1e6).toFixed(0)} / ${(total / 1e6).toFixed(0)} MB`,
        ),
    });
    bar.done();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (values.json) {
      printJson(io, { ...result, dir, checkpoint_key: key.source, pinned_key: key.pinned });
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
