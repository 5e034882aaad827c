import type { NotificationState } from "../ports/notification-state.js";
import { withDeadline } from "./redis/deadline.js";

/**
 * What the adapter needs of a node-redis client: `eval` with keys, which a
 * standalone client, Sentinel and Cluster all route by the first key.
 */
export interface RedisEvalClient {
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export interface RedisNotificationStateOptions {
  client: RedisEvalClient;
  /**
   * Key prefix with the store's hash tag (default `{writ}`), so on Cluster
   * these keys live in the same slot as the store's.
   */
  prefix?: string;
  /** Deadline of each call (default 5,000 ms); the notification worker retries after it. */
  operationTimeoutMs?: number;
}

/** How long facts about a request are kept: longer than any request can live. */
const FACTS_TTL_MS = 30 * 24 * 3600 * 1000;

const GET = "return redis.call('GET', KEYS[1])";
const SET = "return redis.call('SET', KEYS[1], ARGV[1])";
const HGETALL = "return redis.call('HGETALL', KEYS[1])";
// The hash and its expiry in one step, so a crash never leaves facts that never expire.
const HSET_EXPIRE = `
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;
const SET_NX = "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end return 0";
// Takes the lease if it is free or already ours (renewing it); atomic, so two
// replicas cannot both believe they hold it.
const LEASE = `
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`;

/**
 * Notification state in Redis, shared by every replica. Keys, under the prefix:
 * `notify:cursor:<worker>` (string), `notify:facts:<scope>:<request>` (hash,
 * expiring after 30 days), `notify:seen:<key>` (SET NX PX) and
 * `notify:lease:<name>` (the holder's id, PX).
 */
export function createRedisNotificationState(
  options: RedisNotificationStateOptions,
): NotificationState {
  const { client } = options;
  const prefix = `${options.prefix ?? "{writ}"}:notify`;
  const timeoutMs = options.operationTimeoutMs ?? 5_000;
  const run = (script: string, key: string, args: string[] = []) =>
    withDeadline(timeoutMs, client.eval(script, { keys: [key], arguments: args }));
  const ms = (value: number) => String(Math.max(1, Math.ceil(value)));
  return {
    async cursor(worker) {
      const reply = await run(GET, `${prefix}:cursor:${worker}`);
      return typeof reply === "string" ? reply : undefined;
    },
    async saveCursor(worker, eventId) {
      await run(SET, `${prefix}:cursor:${worker}`, [eventId]);
    },
    async facts(scope, requestId) {
      return toRecord(await run(HGETALL, `${prefix}:facts:${scope}:${requestId}`));
    },
    async saveFacts(scope, requestId, facts) {
      const entries = Object.entries(facts);
      if (entries.length === 0) return;
      await run(HSET_EXPIRE, `${prefix}:facts:${scope}:${requestId}`, [
        String(FACTS_TTL_MS),
        ...entries.flat(),
      ]);
    },
    async firstSeen(key, ttlMs) {
      return Number(await run(SET_NX, `${prefix}:seen:${key}`, [ms(ttlMs)])) === 1;
    },
    async lease(name, holder, ttlMs) {
      return Number(await run(LEASE, `${prefix}:lease:${name}`, [holder, ms(ttlMs)])) === 1;
    },
  };
}

/** A Lua table of field/value pairs comes back as a flat array (or a map over RESP3). */
function toRecord(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out[String(k)] = String(v);
  }
  return out;
}
