import type { Clock } from "../ports/clock.js";
import type { NotificationState } from "../ports/notification-state.js";

export interface MemoryNotificationStateOptions {
  clock: Clock;
  /** Most remembered payload keys kept; the oldest go first (default 100,000). */
  maxSeen?: number;
  /** Most requests whose facts are kept; the least recently updated go first (default 100,000). */
  maxRequests?: number;
  /** Leases kept before lapsed ones are swept (default 10,000). */
  maxLeases?: number;
}

/**
 * Notification state for one process (dev, tests, single-replica setups with
 * the embedded store). A restart forgets it, as it forgets the embedded store's
 * stream that its cursors point into. Expiry uses the injected clock.
 */
export function createMemoryNotificationState(
  options: MemoryNotificationStateOptions,
): NotificationState {
  const { clock } = options;
  const maxSeen = options.maxSeen ?? 100_000;
  const maxRequests = options.maxRequests ?? 100_000;
  const maxLeases = options.maxLeases ?? 10_000;
  const cursors = new Map<string, string>();
  const facts = new Map<string, Record<string, string>>();
  // Insertion order is expiry order only roughly (ttls differ); entries are checked on read.
  const seen = new Map<string, number>();
  const leases = new Map<string, { holder: string; until: number }>();
  const factKey = (scope: string, requestId: string) => `${scope}\u0000${requestId}`;

  return {
    async cursor(worker) {
      return cursors.get(worker);
    },
    async saveCursor(worker, eventId) {
      cursors.set(worker, eventId);
    },
    async facts(scope, requestId) {
      return { ...facts.get(factKey(scope, requestId)) };
    },
    async saveFacts(scope, requestId, update) {
      const key = factKey(scope, requestId);
      const merged = { ...facts.get(key), ...update };
      facts.delete(key);
      facts.set(key, merged);
      // Bounded like the embedded store's stream: the least recently updated go first.
      while (facts.size > maxRequests) facts.delete(facts.keys().next().value as string);
    },
    async firstSeen(key, ttlMs) {
      const now = clock.now();
      const until = seen.get(key);
      if (until !== undefined && until > now) return false;
      seen.delete(key);
      seen.set(key, now + ttlMs);
      while (seen.size > maxSeen) {
        const oldest = seen.keys().next().value as string;
        seen.delete(oldest);
      }
      return true;
    },
    async lease(name, holder, ttlMs) {
      const now = clock.now();
      const current = leases.get(name);
      if (current !== undefined && current.holder !== holder && current.until > now) return false;
      leases.set(name, { holder, until: now + ttlMs });
      // Besides one per worker, a lease per recorded notification: lapsed ones
      // are dropped so that a long-running process does not keep them all.
      if (leases.size > maxLeases) {
        for (const [key, lease] of leases) if (lease.until <= now) leases.delete(key);
      }
      return true;
    },
  };
}
