import { WritError } from "../domain/errors.js";
import type { RateLimiter } from "../ports/rate-limiter.js";

/**
 * Takes one from `subject`'s limit, or refuses with `429 rate_limited` and
 * when to retry, having changed and recorded nothing. No limiter: no limit.
 */
export async function assertWithinLimit(
  limiter: RateLimiter | undefined,
  subject: string,
  tooMany: string,
): Promise<void> {
  if (limiter === undefined) return;
  const decision = await limiter.take(subject);
  if (decision.allowed) return;
  const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  throw new WritError("rate_limited", `${tooMany}; retry in ${retryAfterSeconds} s.`, {
    retry_after_seconds: retryAfterSeconds,
  });
}
