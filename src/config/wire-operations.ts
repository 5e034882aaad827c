import {
  createMetricsNotifier,
  instrumentRateLimiter,
  instrumentStore,
} from "../adapters/instrumented.js";
import { createMemoryRateLimiter } from "../adapters/memory-rate-limiter.js";
import type { Clock } from "../ports/clock.js";
import type { Metrics } from "../ports/metrics.js";
import type { Notifier } from "../ports/notifier.js";
import type { RateLimit, RateLimiter } from "../ports/rate-limiter.js";
import type { RequestStore } from "../ports/store.js";
import type { WritConfig } from "./schema.js";

/**
 * A limit per subject: `overrides` by id, else the default, none when the
 * default's rate is 0 (the limit is off).
 */
function limitTable(
  perMinute: number,
  burst: number,
  overrides: Readonly<
    Record<string, { readonly perMinute: number; readonly burst?: number | undefined }>
  >,
): (id: string) => RateLimit | undefined {
  const byId = new Map(
    Object.entries(overrides).map(([id, limit]) => [
      id,
      { perMinute: limit.perMinute, burst: limit.burst ?? burst },
    ]),
  );
  const fallback = perMinute === 0 ? undefined : { perMinute, burst };
  return (id) => byId.get(id) ?? fallback;
}

/** The per-agent request limit of a configuration; undefined when limits are off for the agent. */
export function rateLimitFor(config: WritConfig): (agentId: string) => RateLimit | undefined {
  const { requests_per_minute_per_agent: perMinute, burst, agents } = config.rate_limits;
  return limitTable(
    perMinute,
    burst,
    Object.fromEntries(
      Object.entries(agents).map(([id, l]) => [
        id,
        { perMinute: l.requests_per_minute, burst: l.burst },
      ]),
    ),
  );
}

/**
 * The per-resource-server limit on refused consumes (used or ended tokens) of
 * a configuration; undefined when it is off for the resource server.
 */
export function consumeLimitFor(config: WritConfig): (serverId: string) => RateLimit | undefined {
  const { refusals_per_minute_per_resource_server: perMinute, refusal_burst: burst } =
    config.rate_limits;
  return limitTable(
    perMinute,
    burst,
    Object.fromEntries(
      Object.entries(config.rate_limits.resource_servers).map(([id, l]) => [
        id,
        { perMinute: l.refusals_per_minute, burst: l.burst },
      ]),
    ),
  );
}

export interface OperationsOptions {
  clock: Clock;
  /** A shared limiter (Redis); by default one held in this process. */
  rateLimiter?: RateLimiter | undefined;
  /** A shared limiter of resource servers' consumes (Redis); by default one held in this process. */
  consumeRateLimiter?: RateLimiter | undefined;
  metrics?: Metrics | undefined;
}

/**
 * The operational parts around the use cases: the rate limiters, metrics
 * (counting store failures, refusals and committed events) and the shutdown
 * signal that ends long-polls so a stopping replica drains quickly.
 */
export function wireOperations(
  config: WritConfig,
  store: RequestStore,
  options: OperationsOptions,
) {
  const { metrics } = options;
  const limiter =
    options.rateLimiter ??
    createMemoryRateLimiter({ limitFor: rateLimitFor(config), clock: options.clock });
  const consumeLimiter =
    options.consumeRateLimiter ??
    createMemoryRateLimiter({ limitFor: consumeLimitFor(config), clock: options.clock });
  const stopping = new AbortController();
  const notifiers: Notifier[] = metrics === undefined ? [] : [createMetricsNotifier(metrics)];
  return {
    store: metrics === undefined ? store : instrumentStore(store, metrics),
    rateLimiter: metrics === undefined ? limiter : instrumentRateLimiter(limiter, metrics),
    consumeRateLimiter:
      metrics === undefined ? consumeLimiter : instrumentRateLimiter(consumeLimiter, metrics),
    notifiers,
    stopping,
  };
}
