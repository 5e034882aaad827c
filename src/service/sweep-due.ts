import { isWritError } from "../domain/errors.js";
import type { BrokerDeps } from "./deps.js";

export interface DueSweep {
  /** Names the sweep in the log ("expiry", "escalation"). */
  readonly name: string;
  /** The ids due now, at most `limit`, earliest first. */
  read(limit: number): Promise<readonly string[]>;
  /** Handles one id; whether this call changed the request. */
  handle(id: string): Promise<boolean>;
}

/**
 * Runs `sweep` over every due id, batch after batch, and resolves with the
 * number of requests it changed. An index entry that leads to no change is
 * put right in the store (`reindex`), so that the next read reaches the
 * requests behind it instead of reading it again.
 *
 * A request that cannot be handled for a reason of its own (a record writ
 * cannot read, a change that kept conflicting) is logged by id and passed
 * over: it stays as it is, and the requests behind it are still expired or
 * escalated, so one bad record never stops the sweep for everyone. Once the
 * others are done the sweep rejects with the first such failure. Any other
 * failure (the store or the audit log unavailable) stops the sweep at once:
 * every other request would fail alike.
 */
export async function sweepDue(
  deps: Pick<BrokerDeps, "store" | "logger">,
  sweep: DueSweep,
  batch: number,
): Promise<number> {
  let changed = 0;
  let failure: unknown;
  const handled = new Set<string>();
  for (;;) {
    const ids = await sweep.read(batch);
    const fresh = ids.filter((id) => !handled.has(id));
    for (const id of fresh) {
      handled.add(id);
      try {
        if (await sweep.handle(id)) changed++;
        else await deps.store.reindex(id);
      } catch (error) {
        if (!(await concernsOnlyThis(deps, error))) throw error;
        deps.logger.error(`${sweep.name} sweep passed over a request it could not handle`, {
          request_id: id,
          code: isWritError(error) ? error.code : "internal_error",
          error: (error as Error).message,
        });
        failure ??= error;
      }
    }
    // A batch of entries this sweep has handled already would come back
    // unchanged: stop rather than read it again until the next sweep.
    if (ids.length < batch || fresh.length === 0) break;
  }
  if (failure !== undefined) throw failure;
  return changed;
}

/**
 * Whether a failure is about one request rather than about writ's storage.
 * The store answers `store_unavailable` both when Redis is out of reach and
 * when it holds a record writ cannot read: while it still answers, the record
 * is the cause.
 */
async function concernsOnlyThis(deps: Pick<BrokerDeps, "store">, error: unknown): Promise<boolean> {
  if (!isWritError(error)) return false;
  if (error.code === "conflict") return true;
  if (error.code !== "store_unavailable") return false;
  return deps.store.ready().catch(() => false);
}
