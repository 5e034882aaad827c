import { type FSWatcher, statSync, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";

/** A running watch; `close()` stops it for good. */
export interface DirectoryWatch {
  close(): void;
}

export interface DirectoryWatchOptions {
  /** Quiet period after the last change before `onChange` runs. */
  readonly debounceMs: number;
  /** Called once changes settle. */
  readonly onChange: () => void;
  /** Called when watching fails; watching goes on where it still can. */
  readonly onError: (error: unknown) => void;
}

/**
 * Calls `onChange` when a file directly in `dir` changes, and also when `dir`
 * itself is replaced: moved aside for a new directory, deleted and created again,
 * or a symlink to it pointed at another release. A watch on the directory alone
 * follows the directory it started on and hears nothing of its replacement, so
 * every later edit would go unnoticed while the old policies stayed in force.
 * The parent is watched for that one name, and each time changes settle the
 * directory the path names now is watched instead, if it is a new one.
 */
export function watchDirectory(dir: string, options: DirectoryWatchOptions): DirectoryWatch {
  const path = resolve(dir);
  const name = basename(path);
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let current: { readonly watcher: FSWatcher; readonly identity: string } | undefined;

  function settle(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(changed, options.debounceMs);
    // Not persistent: watching alone must not keep a process alive.
    timer.unref();
  }

  function changed(): void {
    if (closed) return;
    try {
      watchCurrentDirectory();
    } catch (error) {
      options.onError(error);
    }
    options.onChange();
  }

  function watchCurrentDirectory(): void {
    // Read before the watch starts: a swap in between is then seen as a change of
    // identity at the next settle, which the parent's watch reports.
    const identity = identityOf(path);
    if (current !== undefined && current.identity === identity) return;
    current?.watcher.close();
    current = undefined;
    // Gone for now: the parent's watch reports its return.
    if (identity === undefined) return;
    const watcher = watch(path, { persistent: false }, settle);
    watcher.on("error", options.onError);
    current = { watcher, identity };
  }

  watchCurrentDirectory();
  let parent: FSWatcher | undefined;
  try {
    parent = watch(dirname(path), { persistent: false }, (_event, entry) => {
      // Some platforms do not say which entry changed: then it may be this one.
      if (entry === null || entry === name) settle();
    });
    parent.on("error", options.onError);
  } catch (error) {
    options.onError(error);
  }

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      current?.watcher.close();
      current = undefined;
      parent?.close();
    },
  };
}

/** Device and inode of the directory `path` names now (symlinks followed), if any. */
function identityOf(path: string): string | undefined {
  const info = statSync(path, { throwIfNoEntry: false });
  return info?.isDirectory() === true ? `${info.dev}:${info.ino}` : undefined;
}
