import { closeSync, fstatSync, openSync, readFileSync, type Stats } from "node:fs";
import { open } from "node:fs/promises";
import { ConfigError } from "./load.js";

// Secrets the configuration names by reference, never by value: Redis passwords,
// TLS keys, webhook signing secrets, the Teams webhook URL. Every problem names
// the key that points here.

const MAX_SECRET_FILE_BYTES = 64 * 1024;

function cannotRead(path: string, key: string, error: unknown): ConfigError {
  return new ConfigError(
    `${key}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "error"}); point it at a file writ's user can read`,
  );
}

/** Opens a file the configuration names under `key`; a failure names the key and the fix. */
export async function openReferencedFile(path: string, key: string) {
  try {
    return await open(path, "r");
  } catch (error) {
    throw cannotRead(path, key, error);
  }
}

/** The checks of an open secret file, made before any of it is read. */
function checkSecretFile(stat: Stats, path: string, key: string): void {
  if (!stat.isFile()) throw new ConfigError(`${key}: ${path} is not a regular file`);
  if (process.platform !== "win32" && (stat.mode & 0o007) !== 0) {
    throw new ConfigError(
      `${key}: ${path} can be read by other users (mode ${(stat.mode & 0o777).toString(8)}); run \`chmod 600 ${path}\` (or 640/440 with a group only writ's user is in)`,
    );
  }
  if (stat.size > MAX_SECRET_FILE_BYTES) {
    throw new ConfigError(`${key}: ${path} is larger than a secret should be`);
  }
}

/**
 * A secret as given, less one trailing newline (`\n` or `\r\n`): `echo` and
 * editors leave one, and a Kubernetes secret made from such a file carries it
 * into the mounted file and into a variable alike. The same rule for files and
 * variables means one secret is one key, however it reaches writ.
 */
function withoutTrailingNewline(text: string): string {
  return text.replace(/\r?\n$/, "");
}

function secretText(text: string, path: string, key: string): string {
  const secret = withoutTrailingNewline(text);
  if (secret === "") throw new ConfigError(`${key}: ${path} is empty`);
  return secret;
}

/**
 * Reads a secret from the environment variable `variable`, which the
 * configuration names under `key`, as a secret file is read. `fix` ends the
 * message when the variable is unset or empty; the value is never quoted.
 */
export function readSecretEnv(
  variable: string,
  key: string,
  env: NodeJS.ProcessEnv,
  fix = "",
): string {
  const value = env[variable];
  if (value === undefined || value === "") {
    throw new ConfigError(`${key}: the environment variable ${variable} is not set${fix}`);
  }
  const secret = withoutTrailingNewline(value);
  if (secret === "") throw new ConfigError(`${key}: the environment variable ${variable} is empty`);
  return secret;
}

/**
 * Reads a secret file. It must be a regular file no other user can read (as
 * ssh demands of private keys): a secret anyone on the host can read is not one.
 */
export async function readSecretFile(path: string, key: string): Promise<string> {
  const handle = await openReferencedFile(path, key);
  try {
    checkSecretFile(await handle.stat(), path, key);
    return secretText(await handle.readFile("utf8"), path, key);
  } finally {
    await handle.close();
  }
}

/** `readSecretFile`, for settings resolved synchronously (webhook secrets). */
export function readSecretFileSync(path: string, key: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw cannotRead(path, key, error);
  }
  try {
    checkSecretFile(fstatSync(fd), path, key);
    return secretText(readFileSync(fd, "utf8"), path, key);
  } finally {
    closeSync(fd);
  }
}

/**
 * A password given by reference (`<key>.password_file` or `<key>.password_env`):
 * read from the file, or taken from the variable; undefined when neither is set.
 */
export async function referencedPassword(
  reference: { password_file?: string | undefined; password_env?: string | undefined },
  key: string,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  const { password_file: file, password_env: variable } = reference;
  if (file !== undefined) return readSecretFile(file, `${key}.password_file`);
  if (variable === undefined) return undefined;
  return readSecretEnv(
    variable,
    `${key}.password_env`,
    env,
    `; set it, or remove ${key}.password_env`,
  );
}
