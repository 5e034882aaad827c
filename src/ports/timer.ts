import { setTimeout as delay } from "node:timers/promises";

/** Waits between retries of background work. Injected so tests move time instead of sleeping. */
export interface Timer {
  /**
   * Resolves after `ms`; rejects once `signal` aborts. A pending wait never keeps
   * the process alive.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemTimer: Timer = {
  sleep: (ms, signal) => delay(ms, undefined, { ref: false, ...(signal ? { signal } : {}) }),
};

/**
 * Resolves after `ms`, or at once when `signal` aborts: a pause between
 * attempts of a loop that stopping simply ends.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => {});
}
