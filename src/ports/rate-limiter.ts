/** The answer of a rate limiter to one attempt. */
export type RateDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      /** Milliseconds until the next attempt would be allowed; at least 1. */
      readonly retryAfterMs: number;
    };

/**
 * Limits how often one subject (an agent) may do something. `take` counts the
 * attempt only when it is allowed, so a refused caller that keeps retrying does
 * not push its own next slot further away. Implementations that share state
 * (Redis) hold the limit across every replica. A limiter that cannot reach its
 * state throws `store_unavailable`: it never allows by default.
 */
export interface RateLimiter {
  take(subject: string): Promise<RateDecision>;
}

/** One limit: a sustained rate and how many attempts may come at once. */
export interface RateLimit {
  /** Sustained rate, in attempts per minute. */
  readonly perMinute: number;
  /** Attempts allowed at once, after a quiet period; at least 1. */
  readonly burst: number;
}
