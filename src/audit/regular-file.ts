import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

/** What {@link openRegularFile} answers for anything but a regular file. */
export const NOT_A_FILE = Symbol("not a regular file");

/**
 * Opens `path` for reading if it is a regular file. Files handed over for
 * review (a log, the key beside it) may be anything: opening a FIFO would block
 * until a writer came, and a device (a link to /dev/zero) would be read
 * forever. Opened without blocking and checked on the open handle, so what is
 * read is what was checked.
 */
export async function openRegularFile(path: string): Promise<FileHandle | typeof NOT_A_FILE> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  if ((await handle.stat()).isFile()) return handle;
  await handle.close();
  return NOT_A_FILE;
}
