import { WritError } from "../domain/errors.js";
import { compareStreamIds } from "../domain/stream-id.js";

interface Waiter {
  readonly id: string;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * How far an audit log is durable in the event stream, and the callers waiting
 * for it to pass their events. A log that follows the stream advances it after
 * each fsync; a worker process advances it as its primary reports. Once failed,
 * it stays failed: every waiter, present and future, gets the failure.
 */
export interface DurableCursor {
  /** The last stream id known to be on disk; undefined for nothing yet. */
  readonly cursor: string | undefined;
  readonly failure: WritError | undefined;
  /** Whether the event with this stream id is on disk. */
  covers(id: string): boolean;
  /**
   * Resolves once the event with stream id `id` is on disk; rejects with the
   * failure, or with `audit_unavailable` after the timeout.
   */
  wait(id: string): Promise<void>;
  /** Moves the cursor forward (never back) and resolves who it now covers. */
  advance(cursor: string | undefined): void;
  /** Fails every waiter, now and later. The first failure is the one kept. */
  fail(error: WritError): void;
}

export function createDurableCursor(options: {
  after: string | undefined;
  /** How long a caller waits before `audit_unavailable` (ms). */
  timeoutMs: number;
}): DurableCursor {
  let cursor = options.after;
  let failure: WritError | undefined;
  const waiters = new Set<Waiter>();
  const covers = (id: string) => cursor !== undefined && compareStreamIds(id, cursor) <= 0;

  function settle(): void {
    for (const waiter of waiters) {
      if (failure !== undefined) waiter.reject(failure);
      else if (covers(waiter.id)) waiter.resolve();
      else continue;
      clearTimeout(waiter.timer);
      waiters.delete(waiter);
    }
  }

  return {
    get cursor() {
      return cursor;
    },
    get failure() {
      return failure;
    },
    covers,
    wait(id) {
      if (failure !== undefined) return Promise.reject(failure);
      if (covers(id)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          id,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(
              new WritError(
                "audit_unavailable",
                "The audit log did not record the change in time.",
              ),
            );
          }, options.timeoutMs),
        };
        waiters.add(waiter);
      });
    },
    advance(next) {
      if (next === undefined || (cursor !== undefined && compareStreamIds(next, cursor) <= 0)) {
        return;
      }
      cursor = next;
      settle();
    },
    fail(error) {
      failure ??= error;
      settle();
    },
  };
}
