import type { Principal } from "../domain/principal.js";
import { requireKind } from "./access.js";
import type { BrokerDeps } from "./deps.js";

/** Counts per time bucket: how many credentials were issued and requests denied. */
export interface Activity {
  /** Start of the first bucket (ms). */
  readonly start: number;
  readonly bucketMs: number;
  readonly issued: readonly number[];
  readonly denied: readonly number[];
  /**
   * True when reading stopped at its cap before it reached the first bucket:
   * the counts are lower bounds.
   */
  readonly capped: boolean;
}

const PAGE = 1000;
/** Events read per view: a bound on the work one page view can cause. */
const MAX_EVENTS_READ = 200_000;
/**
 * How far the stream's order may stray from the events' times: each replica
 * times an event by its own clock, just before the store records it. Reading
 * stops at the first event this much older than the first bucket, so events
 * recorded later but timed a little earlier are still counted.
 */
const OUT_OF_ORDER_MS = 5 * 60_000;

/**
 * Issuance and denials over the last `buckets` × `bucketMs`, ending now: counts
 * only, so reviewers may see it as well as auditors.
 *
 * It reads the stream newest first and stops once it is past the first bucket,
 * so its cost follows the events in the window, never the stream's length: a
 * filtered read from the stream's start would pass over every older event.
 */
export async function recentActivity(
  deps: BrokerDeps,
  principal: Principal,
  options: { buckets: number; bucketMs: number },
): Promise<Activity> {
  requireKind(principal, "reviewer", "auditor");
  const { buckets, bucketMs } = options;
  const end = Math.ceil((deps.clock.now() + 1) / bucketMs) * bucketMs;
  const start = end - buckets * bucketMs;
  const issued = new Array<number>(buckets).fill(0);
  const denied = new Array<number>(buckets).fill(0);
  const answer = (capped: boolean): Activity => ({ start, bucketMs, issued, denied, capped });
  let before: string | undefined;
  for (let read = 0; read < MAX_EVENTS_READ; ) {
    const page = await deps.store.recentEvents({
      limit: PAGE,
      ...(before !== undefined ? { before } : {}),
    });
    for (const event of page) {
      if (event.time < start - OUT_OF_ORDER_MS) return answer(false);
      const index = Math.floor((event.time - start) / bucketMs);
      if (index < 0 || index >= buckets) continue;
      if (event.type === "credential.issued") issued[index] = (issued[index] ?? 0) + 1;
      else if (event.type === "request.denied") denied[index] = (denied[index] ?? 0) + 1;
    }
    read += page.length;
    if (page.length < PAGE) return answer(false);
    before = page.at(-1)?.id;
  }
  return answer(true);
}
