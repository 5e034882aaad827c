import type { RateDecision, RateLimit } from "../ports/rate-limiter.js";

/**
 * The generic cell rate algorithm: one number per subject, the theoretical
 * arrival time (TAT) of its next attempt. An attempt is allowed while the TAT
 * is at most `burst - 1` intervals ahead of now; each allowed attempt moves it
 * one interval on. Both limiter adapters compute exactly this (the Redis one
 * in Lua), so they agree on every decision.
 */
export interface GcraStep {
  readonly decision: RateDecision;
  /** The TAT to store after the attempt; unchanged when it was refused. */
  readonly tatMs: number;
}

/** Milliseconds between attempts at the sustained rate. */
export function intervalMs(limit: RateLimit): number {
  return 60_000 / limit.perMinute;
}

/** How far ahead of now the TAT may run before attempts are refused. */
export function toleranceMs(limit: RateLimit): number {
  return intervalMs(limit) * (limit.burst - 1);
}

/** One attempt at `nowMs` against a stored TAT (undefined: never seen, or long quiet). */
export function gcraStep(
  storedTatMs: number | undefined,
  nowMs: number,
  limit: RateLimit,
): GcraStep {
  const tat = storedTatMs === undefined || storedTatMs < nowMs ? nowMs : storedTatMs;
  const tolerance = toleranceMs(limit);
  if (tat - nowMs > tolerance) {
    return {
      decision: { allowed: false, retryAfterMs: Math.max(1, Math.ceil(tat - tolerance - nowMs)) },
      tatMs: tat,
    };
  }
  return { decision: { allowed: true }, tatMs: tat + intervalMs(limit) };
}

/** Checks a limit's numbers; a programming or configuration mistake is a TypeError. */
export function assertValidLimit(limit: RateLimit): void {
  if (!Number.isFinite(limit.perMinute) || limit.perMinute <= 0) {
    throw new TypeError("a rate limit's perMinute must be a positive number");
  }
  if (!Number.isInteger(limit.burst) || limit.burst < 1) {
    throw new TypeError("a rate limit's burst must be an integer of at least 1");
  }
}
