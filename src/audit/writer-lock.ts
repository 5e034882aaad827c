import { randomBytes } from "node:crypto";
import { link, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { WritError } from "../domain/errors.js";

/** Releases the lock; safe to call more than once. */
export type ReleaseLock = () => Promise<void>;

/**
 * Who holds a lock: a pid and, where the system tells it, when that process
 * started (Linux: clock ticks since boot, from `/proc/<pid>/stat`). A pid alone
 * is reused, by an unrelated process or, in a container where writ is pid 1,
 * by writ itself after a crash; the pair names one process.
 */
interface Holder {
  readonly pid: number;
  readonly started?: string;
}

/**
 * Locks this process holds or is taking now, by path, with how many opens
 * claim each: a second open in this process is refused. A count, not a flag:
 * an open whose link fails must take back only its own claim, never that of
 * another open in this process whose link succeeded meanwhile.
 */
const heldHere = new Map<string, number>();

function claim(path: string): void {
  heldHere.set(path, (heldHere.get(path) ?? 0) + 1);
}

function unclaim(path: string): void {
  const left = (heldHere.get(path) ?? 0) - 1;
  if (left > 0) heldHere.set(path, left);
  else heldHere.delete(path);
}

/** A process's start time from `/proc/<pid>/stat`, or undefined where there is no such file. */
async function startTimeOf(pid: number | "self"): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces; field 22
  // (starttime) is the 20th after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const started = fields[19];
  return started !== undefined && /^\d+$/.test(started) ? started : undefined;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The lock file's text: `<pid> <start time>`, or `<pid>` alone as older writ wrote it. */
function parseHolder(text: string): Holder | undefined {
  const match = /^(\d{1,10})(?: (\d{1,20}))?\n$/.exec(text);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  if (!Number.isSafeInteger(pid) || pid < 1) return undefined;
  return match[2] !== undefined ? { pid, started: match[2] } : { pid };
}

async function isHeld(path: string, holder: Holder): Promise<boolean> {
  if (holder.pid === process.pid) {
    // Our own pid: either this process holds it, or an earlier process that had
    // the same pid (a restarted container) left it.
    return heldHere.has(path);
  }
  if (!pidExists(holder.pid)) return false;
  if (holder.started === undefined) return true;
  const started = await startTimeOf(holder.pid);
  // Without /proc the pid's existence is all there is to go on.
  return started === undefined || started === holder.started;
}

/**
 * Takes the one-writer lock of an audit log: a second process appending to the
 * same file would fork the hash chain. A lock left by a process that has died
 * (or whose pid now belongs to another process) is taken over.
 *
 * The lock file appears whole or not at all: it is written under a temporary
 * name and linked into place, which fails if a lock exists, so no process ever
 * reads a half-written lock and mistakes it for a stale one. A stale lock is
 * moved aside before it is replaced, and if what was moved is not the stale
 * lock that was judged (another process replaced it meanwhile), it is put back.
 */
export async function acquireWriterLock(file: string): Promise<ReleaseLock> {
  const path = resolve(file);
  const started = await startTimeOf("self");
  const own = `${process.pid}${started !== undefined ? ` ${started}` : ""}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const temporary = `${path}.${randomBytes(8).toString("hex")}.tmp`;
    await writeFile(temporary, own, { mode: 0o600, flag: "wx" });
    // Claimed before the link, so that another open in this process that reads
    // the new lock before this one resumes sees it held, not left by a dead pid.
    claim(path);
    try {
      await link(temporary, path);
      return releaser(path, own);
    } catch (error) {
      unclaim(path);
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      await unlink(temporary).catch(() => {});
    }
    const text = await readFile(path, "utf8").catch(() => undefined);
    // Gone since the link failed: its holder released it; try again.
    if (text === undefined) continue;
    const holder = parseHolder(text);
    if (holder === undefined) {
      throw new WritError(
        "audit_unavailable",
        `The audit log's lock file ${path} is not one writ wrote; remove it if no writ process writes this log.`,
      );
    }
    if (await isHeld(path, holder)) {
      throw new WritError(
        "audit_unavailable",
        `Another writ process (pid ${holder.pid}) writes this audit log.`,
        { locked_by: holder.pid },
      );
    }
    const aside = `${path}.${randomBytes(8).toString("hex")}.stale`;
    try {
      await rename(path, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    const moved = await readFile(aside, "utf8").catch(() => undefined);
    if (moved !== text) {
      // A live lock taken meanwhile by another process: put it back.
      await link(aside, path).catch(() => {});
    }
    await unlink(aside).catch(() => {});
  }
  throw new WritError("audit_unavailable", "Could not take the audit log's writer lock.");
}

function releaser(path: string, own: string): ReleaseLock {
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    unclaim(path);
    // Only our own lock: never one another process took over after us.
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === own) await unlink(path).catch(() => {});
  };
}
