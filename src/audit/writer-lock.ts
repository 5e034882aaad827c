import { open, readFile, unlink } from "node:fs/promises";
import { WritError } from "../domain/errors.js";

/** Releases the lock; safe to call more than once. */
export type ReleaseLock = () => Promise<void>;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the one-writer lock of an audit log: a second process appending to the
 * same file would fork the hash chain. A lock left by a process that has died
 * is taken over.
 */
export async function acquireWriterLock(path: string): Promise<ReleaseLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await unlink(path).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new WritError(
        "audit_unavailable",
        `Another writ process (pid ${holder}) writes this audit log.`,
        { locked_by: holder },
      );
    }
    await unlink(path).catch(() => {});
  }
  throw new WritError("audit_unavailable", "Could not take the audit log's writer lock.");
}
