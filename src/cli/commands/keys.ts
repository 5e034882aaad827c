import { parseArgs } from "node:util";
import {
  activateKeyRing,
  createKeyRing,
  describeKeyRing,
  type JwtAlgorithm,
  stageKeyRing,
} from "../../adapters/jwt-keys.js";
import { loadConfigFile, parseConfig, readEnv } from "../../config/load.js";
import { jwtKeysPath } from "../../config/production.js";
import { MAX_TTL_SECONDS } from "../../domain/request.js";
import { type Command, type CommandIo, UsageError } from "../command.js";

const LOCATION_HELP = `
The key ring file is --file, else jwt.keys_file of the configuration (--config
or WRIT_CONFIG), else <data_dir>/keys/jwt.json. It holds private keys: it is
written with mode 0600 and must reach every replica by a secret channel.`;

/** `word` as one shell word, quoted only when it needs to be, so a printed command can be pasted. */
function shellWord(word: string): string {
  return /^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

interface RingLocation {
  path: string;
  algorithm: JwtAlgorithm;
  /** The `writ keys init` that creates a ring at `path`, with the options that found it. */
  initCommand: string;
}

async function ringLocation(
  values: { file?: string | undefined; config?: string | undefined },
  io: CommandIo,
): Promise<RingLocation> {
  const configFile = values.config ?? readEnv(io.env).WRIT_CONFIG;
  const config = configFile ? await loadConfigFile(configFile) : parseConfig({}, "defaults");
  const path = values.file ?? jwtKeysPath(config);
  const initCommand =
    values.file !== undefined
      ? `writ keys init --file ${shellWord(values.file)}`
      : configFile
        ? `writ keys init --config ${shellWord(configFile)}`
        : "writ keys init";
  return { path, algorithm: config.jwt.algorithm, initCommand };
}

/**
 * Runs `use` on the ring at `where`, turning the file system's errors into a
 * sentence that names the file and what to do, instead of Node's raw message.
 * `creating` is true for `writ keys init`, which expects no ring there.
 */
async function onRing<T>(
  where: RingLocation,
  use: (path: string) => Promise<T>,
  creating = false,
): Promise<T> {
  try {
    return await use(where.path);
  } catch (error) {
    const { code, path = where.path } = error as NodeJS.ErrnoException;
    if (typeof code !== "string") throw error;
    switch (code) {
      case "ENOENT":
      case "ENOTDIR":
        if (creating) {
          throw new Error(`cannot create ${where.path}: a part of its path is not a directory`);
        }
        throw new Error(
          `there is no JWT key ring at ${where.path}; create one with \`${where.initCommand}\``,
        );
      case "EISDIR":
        throw new Error(
          `${where.path} is a directory, not a JWT key ring; give the ring file with --file or jwt.keys_file`,
        );
      case "EACCES":
      case "EPERM":
        throw new Error(`${path} is not accessible to this user (${code}); run as its owner`);
      default:
        throw new Error(`cannot use ${path} (${code})`);
    }
  }
}

function parseKeep(value: string | undefined): number {
  if (value === undefined) return 2 * MAX_TTL_SECONDS;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < MAX_TTL_SECONDS || seconds > 31_536_000) {
    throw new UsageError(
      `--keep-retired-seconds takes a whole number from ${MAX_TTL_SECONDS} (the longest credential lifetime) to 31536000`,
    );
  }
  return seconds;
}

const location = {
  file: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean", default: false },
} as const;

export const keysInitCommand: Command = {
  path: ["keys", "init"],
  summary: "Create the JWT signing key ring for production (never replaces one)",
  help: `
Usage: writ keys init [--config <file>] [--file <path>] [--algorithm EdDSA|ES256] [--json]

Creates a key ring with one fresh signing key. writ serve never generates
keys: every replica must sign with the same ones. An existing file is never
replaced (that would strand every token its keys signed); rotate instead.
${LOCATION_HELP}
`,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: { ...location, algorithm: { type: "string" } },
      strict: true,
      allowPositionals: false,
    });
    const where = await ringLocation(values, io);
    const algorithm = values.algorithm ?? where.algorithm;
    if (algorithm !== "EdDSA" && algorithm !== "ES256") {
      throw new UsageError("--algorithm must be EdDSA or ES256");
    }
    const ring = await onRing(where, (path) => createKeyRing(path, algorithm), true);
    io.stdout(
      values.json
        ? `${JSON.stringify({ file: where.path, kid: ring.active.kid, alg: ring.active.alg })}\n`
        : `Created ${where.path} (mode 0600)\n  active key: ${ring.active.kid} (${ring.active.alg})\n`,
    );
    return 0;
  },
};

export const keysListCommand: Command = {
  path: ["keys", "list"],
  summary: "List the JWT signing keys: active, staged, retired (no secrets)",
  help: `
Usage: writ keys list [--config <file>] [--file <path>] [--json]

Prints each key's id (kid), algorithm, state and dates. Nothing secret.
${LOCATION_HELP}
`,
  async run(args, io) {
    const { values } = parseArgs({ args: [...args], options: location, strict: true });
    const where = await ringLocation(values, io);
    const keys = await onRing(where, describeKeyRing);
    if (values.json) {
      io.stdout(`${JSON.stringify({ file: where.path, keys })}\n`);
    } else {
      for (const k of keys) {
        io.stdout(
          `${k.state.padEnd(8)} ${k.kid}  ${k.alg}  created ${k.createdAt}${k.retiredAt ? `  retired ${k.retiredAt}` : ""}\n`,
        );
      }
    }
    return 0;
  },
};

export const keysStageCommand: Command = {
  path: ["keys", "stage"],
  summary: "Add a new JWT key that verifies but does not sign yet (step 1 of a rotation)",
  help: `
Usage: writ keys stage [--config <file>] [--file <path>] [--json]

Adds a new key to the ring. It is published in /.well-known/jwks.json and
verifies, but does not sign yet. Copy the file to every replica and restart
them one by one; then run \`writ keys activate\`.
${LOCATION_HELP}
`,
  async run(args, io) {
    const { values } = parseArgs({ args: [...args], options: location, strict: true });
    const where = await ringLocation(values, io);
    const key = await onRing(where, (path) => stageKeyRing(path));
    io.stdout(
      values.json
        ? `${JSON.stringify({ file: where.path, kid: key.kid, state: key.state })}\n`
        : `Staged ${key.kid} in ${where.path}\nRoll the file out to every replica, restart them, then run \`writ keys activate\`.\n`,
    );
    return 0;
  },
};

export const keysActivateCommand: Command = {
  path: ["keys", "activate"],
  summary: "Make the staged JWT key sign, retiring the previous one (step 2 of a rotation)",
  help: `
Usage: writ keys activate [<kid>] [--config <file>] [--file <path>]
                          [--keep-retired-seconds <n>] [--json]

Makes the staged key (the newest, or <kid>) the active signing key. The
previous key is retired: still published, so tokens it signed verify until
they expire. Retired keys older than --keep-retired-seconds (default 86400,
at least the longest credential lifetime) are dropped. Roll the file out and
restart the replicas again.
${LOCATION_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...location, "keep-retired-seconds": { type: "string" } },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 1) throw new UsageError("give at most one key id");
    const keep = parseKeep(values["keep-retired-seconds"]);
    const where = await ringLocation(values, io);
    const key = await onRing(where, (path) => activateKeyRing(path, keep, positionals[0]));
    io.stdout(
      values.json
        ? `${JSON.stringify({ file: where.path, kid: key.kid, state: key.state })}\n`
        : `Activated ${key.kid} in ${where.path}\nRoll the file out to every replica and restart them.\n`,
    );
    return 0;
  },
};

export const keysRotateCommand: Command = {
  path: ["keys", "rotate"],
  summary: "Stage and activate a new JWT key at once (one replica only)",
  help: `
Usage: writ keys rotate [--config <file>] [--file <path>] [--keep-retired-seconds <n>] [--json]

\`writ keys stage\` and \`writ keys activate\` in one step. With several
replicas, use the two steps instead: a replica restarted with the new key
would otherwise sign tokens that replicas still on the old file cannot verify.
${LOCATION_HELP}
`,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: { ...location, "keep-retired-seconds": { type: "string" } },
      strict: true,
    });
    const keep = parseKeep(values["keep-retired-seconds"]);
    const where = await ringLocation(values, io);
    const key = await onRing(where, async (path) => {
      const staged = await stageKeyRing(path);
      return activateKeyRing(path, keep, staged.kid);
    });
    io.stdout(
      values.json
        ? `${JSON.stringify({ file: where.path, kid: key.kid, state: key.state })}\n`
        : `Rotated ${where.path}: ${key.kid} is now active\n`,
    );
    return 0;
  },
};

export const keysCommands: readonly Command[] = [
  keysInitCommand,
  keysListCommand,
  keysStageCommand,
  keysActivateCommand,
  keysRotateCommand,
];
