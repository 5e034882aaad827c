import { randomBytes } from "node:crypto";
import { WritError } from "../../domain/errors.js";
import type { DeniedSession, DeniedSessionLedger } from "../../ports/denied-sessions.js";
import type { RedisEvalClient } from "../notification-state-redis.js";
import { withDeadline } from "./deadline.js";

export interface RedisDeniedSessionsOptions {
  readonly client: RedisEvalClient;
  /** What is denied, named in the keys (e.g. `aws-denies`). */
  readonly name: string;
  /**
   * Key prefix with the store's hash tag (default `{writ}`), so on Cluster the
   * ledger's keys live in the same slot as the store's.
   */
  readonly prefix?: string;
  /** Deadline of each Redis call (default 5,000 ms). */
  readonly operationTimeoutMs?: number;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** Scopes are AWS role names (and the like): no spaces, no braces. */
const SCOPE = /^[\w+=,.@:-]{1,128}$/;
/** After its last entry is due, a key lingers this long before Redis drops it. */
const LINGER_MS = 3_600_000;

// The entry, the scope's place in the index and the caller's claim in one
// step, the entry and the index each keeping its later retention, and each key
// expiring by itself after its last entry.
// KEYS: the scope's set, the index, the entry's claims.
// ARGV: retain-until, member, scope, now, linger, claim.
const ADD = `
local function keep(key, member, untilMs)
  local old = redis.call('ZSCORE', key, member)
  if not old or tonumber(old) < untilMs then redis.call('ZADD', key, untilMs, member) end
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.max(1, tonumber(last[2]) - tonumber(ARGV[4]) + tonumber(ARGV[5])))
end
keep(KEYS[1], ARGV[2], tonumber(ARGV[1]))
keep(KEYS[2], ARGV[3], tonumber(ARGV[1]))
redis.call('SADD', KEYS[3], ARGV[6])
local retained = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]))
redis.call('PEXPIRE', KEYS[3], math.max(1, retained - tonumber(ARGV[4]) + tonumber(ARGV[5])))
return 1
`;
// The caller's claim goes; the entry goes with it only if no other claim is
// left. KEYS: the scope's set, the entry's claims. ARGV: member, claim. The
// index keeps the scope until its own score passes.
const WITHDRAW = `
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1
`;
// Drops what is no longer retained, then reads the rest. KEYS: one set. ARGV: now.
const LIVE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

/** A ledger member: `<grant> <issued at ms> <ends at ms>`. */
function encode(session: DeniedSession): string {
  return `${session.grant} ${session.issuedAt} ${session.endsAt}`;
}

function decode(member: unknown): DeniedSession | undefined {
  if (typeof member !== "string") return undefined;
  const [grant, issued, ends, extra] = member.split(" ");
  const issuedAt = Number(issued);
  const endsAt = Number(ends);
  if (grant === undefined || grant === "" || extra !== undefined) return undefined;
  if (!Number.isSafeInteger(issuedAt) || !Number.isSafeInteger(endsAt)) return undefined;
  return { grant, issuedAt, endsAt };
}

/**
 * The {@link DeniedSessionLedger} in Redis, shared by every writ process on the
 * store. Keys, under the prefix (one hash tag, so scripts run on Cluster):
 * `<name>` (a sorted set of scopes) and `<name>:<scope>` (a sorted set of that
 * scope's sessions), each scored by when it may be forgotten and expiring by
 * itself after that; and `<name>:claims/<scope>/<grant>` (the set of claims on
 * one entry), expiring with its entry. A scope holds no `/`, so no claims key
 * is ever a scope's.
 */
export function createRedisDeniedSessions(
  options: RedisDeniedSessionsOptions,
): DeniedSessionLedger {
  if (!NAME.test(options.name)) throw new TypeError("ledger name: lower-case letters, digits, -");
  const { client } = options;
  const index = `${options.prefix ?? "{writ}"}:${options.name}`;
  const timeoutMs = options.operationTimeoutMs ?? 5_000;
  const keyOf = (scope: string) => {
    if (!SCOPE.test(scope)) throw new TypeError("not a ledger scope");
    return `${index}:${scope}`;
  };
  const claimsKeyOf = (scope: string, grant: string) => {
    if (!SCOPE.test(scope)) throw new TypeError("not a ledger scope");
    return `${index}:claims/${scope}/${grant}`;
  };
  const run = async (script: string, keys: string[], args: string[]) => {
    try {
      return await withDeadline(timeoutMs, client.eval(script, { keys, arguments: args }));
    } catch {
      throw new WritError(
        "store_unavailable",
        "The store could not be reached to record a revocation.",
      );
    }
  };
  const members = (reply: unknown) => (Array.isArray(reply) ? (reply as unknown[]) : []);
  return {
    shared: true,
    async add(scope, session, retainUntil, now) {
      const member = encode(session);
      if (decode(member)?.grant !== session.grant) throw new TypeError("not a ledger grant");
      const claim = randomBytes(16).toString("base64url");
      await run(
        ADD,
        [keyOf(scope), index, claimsKeyOf(scope, session.grant)],
        [
          String(Math.ceil(retainUntil)),
          member,
          scope,
          String(Math.floor(now)),
          String(LINGER_MS),
          claim,
        ],
      );
      return claim;
    },
    async withdraw(scope, session, claim) {
      await run(
        WITHDRAW,
        [keyOf(scope), claimsKeyOf(scope, session.grant)],
        [encode(session), claim],
      );
    },
    async live(scope, now) {
      const reply = await run(LIVE, [keyOf(scope)], [String(Math.floor(now))]);
      return members(reply).flatMap((m) => decode(m) ?? []);
    },
    async scopes(now) {
      const reply = await run(LIVE, [index], [String(Math.floor(now))]);
      return members(reply).filter((m): m is string => typeof m === "string" && SCOPE.test(m));
    },
  };
}
