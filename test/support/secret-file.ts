import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Writes `content` to `dir/name` with exactly `mode` (umask aside); returns its path. */
export async function writeSecretFile(
  dir: string,
  name: string,
  content: string,
  mode: number,
): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  await chmod(path, mode);
  return path;
}
