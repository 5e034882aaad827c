import { isWritError } from "../domain/errors.js";
import type { Metrics } from "../ports/metrics.js";
import type { Notifier } from "../ports/notifier.js";
import type { RateLimiter } from "../ports/rate-limiter.js";
import type { RequestStore } from "../ports/store.js";

/**
 * Whether a store failure is an outage (Redis unreachable, timed out, refused)
 * rather than an expected answer. Stores report outages as `store_unavailable`;
 * anything that is not a coded writ error is an outage too.
 */
function isOutage(error: unknown): boolean {
  return !isWritError(error) || error.code === "store_unavailable";
}

/** The store, counting each failed call in `writ_redis_errors_total` by operation. */
export function instrumentStore(store: RequestStore, metrics: Metrics): RequestStore {
  const counted =
    <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await call(...args);
      } catch (error) {
        if (isOutage(error)) metrics.countRedisError(operation);
        throw error;
      }
    };
  return {
    // Properties other than the operations (flags a store declares) pass through.
    ...store,
    create: counted("create", (request, events) => store.create(request, events)),
    get: counted("get", (id) => store.get(id)),
    commit: counted("commit", (next, version, events) => store.commit(next, version, events)),
    append: counted("append", (events) => store.append(events)),
    list: counted("list", (query) => store.list(query)),
    due: counted("due", (now, limit) => store.due(now, limit)),
    escalationsDue: counted("escalationsDue", (now, limit) => store.escalationsDue(now, limit)),
    reindex: counted("reindex", (id) => store.reindex(id)),
    events: counted("events", (query) => store.events(query)),
    scanEvents: counted("events", (query) => store.scanEvents(query)),
    // Another read of the stream: counted with the other event reads.
    recentEvents: counted("events", (query) => store.recentEvents(query)),
    waitForChange: counted("waitForChange", (id, version, timeoutMs, signal) =>
      store.waitForChange(id, version, timeoutMs, signal),
    ),
    waitForEvents: counted("waitForEvents", (after, timeoutMs, signal, options) =>
      store.waitForEvents(after, timeoutMs, signal, options),
    ),
    nextEvents: counted("nextEvents", (after, options) => store.nextEvents(after, options)),
    // A store that cannot answer `ready` is not ready: count it, report false.
    ready: async () => {
      try {
        const ready = await store.ready();
        if (!ready) metrics.countRedisError("ready");
        return ready;
      } catch {
        metrics.countRedisError("ready");
        return false;
      }
    },
    close: () => store.close(),
  };
}

/** The limiter, counting refusals in `writ_rate_limited_total`. */
export function instrumentRateLimiter(limiter: RateLimiter, metrics: Metrics): RateLimiter {
  return {
    async take(subject) {
      const decision = await limiter.take(subject);
      if (!decision.allowed) metrics.countRateLimited();
      return decision;
    },
  };
}

/**
 * Feeds committed events to the metrics. It rides on the notifier port because
 * that is where each committed event is announced exactly once, by the process
 * that committed it, so replicas never count one event twice.
 */
export function createMetricsNotifier(metrics: Metrics): Notifier {
  return {
    name: "metrics",
    async notify(request, events) {
      metrics.observeEvents(request, events);
    },
  };
}
