import { createHash } from "node:crypto";
import { WritError } from "../domain/errors.js";
import type { RateLimit, RateLimiter } from "../ports/rate-limiter.js";
import { assertValidLimit, intervalMs, toleranceMs } from "./gcra.js";
import { withDeadline } from "./redis/deadline.js";

/** What the limiter needs of a node-redis client (standalone, Sentinel or Cluster). */
export interface RedisScriptClient {
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export interface RedisRateLimiterOptions {
  client: RedisScriptClient;
  /** The limit of a subject; undefined means the subject is not limited. */
  limitFor: (subject: string) => RateLimit | undefined;
  /**
   * Key prefix, with the store's hash tag (default `{writ}`): on Cluster every
   * writ key lives in one slot, like the store's.
   */
  prefix?: string;
  /**
   * Which limit this is, when there are several (`consume`): each counts in
   * keys of its own, so an agent and a resource server that share an id never
   * spend each other's allowance. Without it, the agents' request limit.
   */
  name?: string;
  /** Called with each Redis failure before `store_unavailable` is thrown (metrics, logs). */
  onError?: (error: unknown) => void;
  /** Deadline of each decision; past it the caller gets `store_unavailable` (default 5,000 ms). */
  operationTimeoutMs?: number;
}

/**
 * GCRA in one script, so the read and the write of a subject's TAT are atomic
 * however many replicas call at once. Time is Redis's own (`TIME`): one clock
 * for every replica, so a replica with a skewed clock cannot widen the limit.
 * Allowed since Redis 5, which replicates scripts by their effects.
 */
export const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
if tat - now > tolerance then
  return {0, math.max(1, math.ceil(tat - tolerance - now))}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now) + 1)
return {1, 0}
`;

const GCRA_SHA1 = createHash("sha1").update(GCRA_SCRIPT).digest("hex");

const PLAIN_SUBJECT = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/;

/** Configured ids are used as they are (readable keys); anything else by its hash. */
function subjectKey(subject: string): string {
  return PLAIN_SUBJECT.test(subject)
    ? subject
    : `sha256:${createHash("sha256").update(subject).digest("hex")}`;
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** Rate limits held in Redis: one limit for an agent (or resource server) across every replica. */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): RateLimiter {
  const base = `${options.prefix ?? "{writ}"}:ratelimit:${options.name === undefined ? "" : `${options.name}:`}`;
  const timeoutMs = options.operationTimeoutMs ?? 5_000;
  async function run(keys: string[], args: string[]): Promise<unknown> {
    try {
      return await options.client.evalSha(GCRA_SHA1, { keys, arguments: args });
    } catch (error) {
      // A restarted or failed-over Redis has an empty script cache: load it once more.
      if (!isNoScript(error)) throw error;
      return options.client.eval(GCRA_SCRIPT, { keys, arguments: args });
    }
  }
  return {
    async take(subject) {
      const limit = options.limitFor(subject);
      if (limit === undefined) return { allowed: true };
      assertValidLimit(limit);
      let reply: unknown;
      try {
        reply = await withDeadline(
          timeoutMs,
          run(
            [`${base}${subjectKey(subject)}`],
            [String(intervalMs(limit)), String(toleranceMs(limit))],
          ),
        );
      } catch (error) {
        options.onError?.(error);
        throw new WritError("store_unavailable", "The rate limit store is unavailable; try again.");
      }
      if (!Array.isArray(reply) || typeof reply[0] !== "number" || typeof reply[1] !== "number") {
        // An answer of the wrong shape is not a permission: refuse, as for an outage.
        options.onError?.(new Error("unexpected rate limit script reply"));
        throw new WritError("store_unavailable", "The rate limit store answered unexpectedly.");
      }
      return reply[0] === 1 ? { allowed: true } : { allowed: false, retryAfterMs: reply[1] };
    },
  };
}
