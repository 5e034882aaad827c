import type { EventType } from "../domain/events.js";
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
  /** True when a count reached the scan cap and is a lower bound. */
  readonly capped: boolean;
}

const PAGE = 1000;
/** Events read per series: a bound on the work one page view can cause. */
const MAX_EVENTS_PER_SERIES = 100_000;

/**
 * Issuance and denials over the last `buckets` × `bucketMs`, ending now: counts
 * only, so reviewers may see it as well as auditors.
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
  let capped = false;
  async function count(type: EventType): Promise<number[]> {
    const out = new Array<number>(buckets).fill(0);
    let after: string | undefined;
    for (let read = 0; read < MAX_EVENTS_PER_SERIES; ) {
      const page = await deps.store.events({
        type,
        since: start,
        until: end,
        limit: PAGE,
        ...(after !== undefined ? { after } : {}),
      });
      for (const event of page) {
        const index = Math.floor((event.time - start) / bucketMs);
        if (index >= 0 && index < buckets) out[index] = (out[index] ?? 0) + 1;
      }
      read += page.length;
      if (page.length < PAGE) return out;
      after = page.at(-1)?.id;
    }
    capped = true;
    return out;
  }
  const [issued, denied] = await Promise.all([count("credential.issued"), count("request.denied")]);
  return { start, bucketMs, issued, denied, capped };
}
