import type { Clock } from "../ports/clock.js";
import type { RateLimit, RateLimiter } from "../ports/rate-limiter.js";
import { assertValidLimit, gcraStep } from "./gcra.js";

export interface MemoryRateLimiterOptions {
  /** The limit of a subject; undefined means the subject is not limited. */
  limitFor: (subject: string) => RateLimit | undefined;
  clock: Clock;
}

/** Above this many tracked subjects, entries whose TAT has passed are dropped. */
const PRUNE_ABOVE = 10_000;

/**
 * Rate limits held in this process: for `writ dev` and a single replica. Each
 * replica would count on its own, so production with Redis uses the Redis limiter.
 */
export function createMemoryRateLimiter(options: MemoryRateLimiterOptions): RateLimiter {
  const tats = new Map<string, number>();
  return {
    async take(subject) {
      const limit = options.limitFor(subject);
      if (limit === undefined) return { allowed: true };
      assertValidLimit(limit);
      const now = options.clock.now();
      if (tats.size > PRUNE_ABOVE) {
        // A passed TAT is the same as no entry, so dropping it changes no decision.
        for (const [key, tat] of tats) if (tat <= now) tats.delete(key);
      }
      const step = gcraStep(tats.get(subject), now, limit);
      if (step.decision.allowed) tats.set(subject, step.tatMs);
      return step.decision;
    },
  };
}
