import { type CommandParser, defineScript } from "redis";
import { REQUEST_STATUSES } from "../../domain/request.js";
import { EVENT_ARGS } from "./codec.js";

/**
 * The Lua scripts that make each state change and its events one atomic step.
 * Redis runs a script alone: nothing else reads or writes between its first
 * and last command, on any replica. Each script checks everything that could
 * make it fail before its first write (argument shapes, key types), because
 * Redis does not roll a script back: one that stopped halfway would leave
 * half a change.
 *
 * The `#!lua` line (Redis 7) makes Redis refuse a writing script up front when
 * it is out of memory, rather than fail on one of its writes.
 */

/** Fixed arguments before the events in the create and commit scripts. */
const HEAD_ARGS = 10;

/**
 * Records the events in ARGV from `first_arg` on, five arguments each, with
 * each event's id list in KEYS from `first_key` on, and returns their ids.
 */
const RECORD = `
local function check_events(first_key, first_arg, types)
  local n = #ARGV - first_arg + 1
  if n < 0 or n % ${EVENT_ARGS} ~= 0 or #KEYS - first_key + 1 ~= n / ${EVENT_ARGS} then
    return redis.error_reply("writ: malformed event arguments")
  end
  -- A key of another type would fail a write halfway: refuse before the first.
  for i = 1, #KEYS do
    local expected = types[i] or "list"
    local actual = redis.call("TYPE", KEYS[i])["ok"]
    if actual ~= "none" and actual ~= expected then
      return redis.error_reply("writ: a key holds the wrong type")
    end
  end
  return nil
end

local function record(stream, maxlen, first_key, first_arg, ids)
  local i = 0
  while first_arg + i * ${EVENT_ARGS} <= #ARGV do
    local a = first_arg + i * ${EVENT_ARGS}
    local id
    if maxlen == "" then
      id = redis.call("XADD", stream, "*", "type", ARGV[a], "request_id", ARGV[a + 1],
        "time", ARGV[a + 2], "actor", ARGV[a + 3], "data", ARGV[a + 4])
    else
      id = redis.call("XADD", stream, "MAXLEN", "~", maxlen, "*", "type", ARGV[a],
        "request_id", ARGV[a + 1], "time", ARGV[a + 2], "actor", ARGV[a + 3], "data", ARGV[a + 4])
    end
    redis.call("RPUSH", KEYS[first_key + i], id)
    ids[#ids + 1] = id
    i = i + 1
  end
  return ids
end
`;

/**
 * KEYS: request, stream, due, list, list of its status, creation counter, then
 * one event-id list per event. ARGV: id, json, version, status, agent, action,
 * live (1/0), expires-at, stream max length ("" = none), created-at digits,
 * then the events. Replies `{0}` if the id exists, else `{1, event ids...}`.
 */
const CREATE_LUA = `#!lua
${RECORD}
local bad = check_events(7, ${HEAD_ARGS + 1},
  {"hash", "stream", "zset", "zset", "zset", "string"})
if bad then return bad end
if redis.call("EXISTS", KEYS[1]) == 1 then return {0} end
local n = redis.call("INCR", KEYS[6])
if n >= 1e12 then return redis.error_reply("writ: creation counter exhausted") end
local member = ARGV[10] .. string.format("%012d", n) .. ":" .. ARGV[1]
redis.call("HSET", KEYS[1], "d", ARGV[2], "v", ARGV[3], "s", ARGV[4], "a", ARGV[5],
  "x", ARGV[6], "m", member)
redis.call("ZADD", KEYS[4], 0, member)
redis.call("ZADD", KEYS[5], 0, member)
if ARGV[7] == "1" then redis.call("ZADD", KEYS[3], ARGV[8], ARGV[1]) end
return record(KEYS[2], ARGV[9], 7, ${HEAD_ARGS + 1}, {1})
`;

const STATUS_KEYS = `{ ${REQUEST_STATUSES.map((s, i) => `["${s}"] = ${4 + i}`).join(", ")} }`;
const COMMIT_FIRST_EVENT_KEY = 4 + REQUEST_STATUSES.length;

/**
 * KEYS: request, stream, due, the list of every status (in REQUEST_STATUSES
 * order), then one event-id list per event. ARGV: id, expected version, json,
 * new version, status, agent, action, live (1/0), expires-at, stream max length,
 * then the events. Replies `{0}` when the stored version is not the expected
 * one (or the request does not exist), writing nothing; else `{1, event ids...}`.
 */
const COMMIT_LUA = `#!lua
${RECORD}
local STATUS_KEY = ${STATUS_KEYS}
local bad = check_events(${COMMIT_FIRST_EVENT_KEY}, ${HEAD_ARGS + 1},
  {"hash", "stream", "zset", ${REQUEST_STATUSES.map(() => '"zset"').join(", ")}})
if bad then return bad end
local current = redis.call("HMGET", KEYS[1], "v", "s", "m")
if current[1] ~= ARGV[2] then return {0} end
local old_list = STATUS_KEY[current[2]]
local new_list = STATUS_KEY[ARGV[5]]
if not old_list or not new_list or not current[3] then
  return redis.error_reply("writ: unreadable request record")
end
redis.call("HSET", KEYS[1], "d", ARGV[3], "v", ARGV[4], "s", ARGV[5], "a", ARGV[6], "x", ARGV[7])
if current[2] ~= ARGV[5] then
  redis.call("ZREM", KEYS[old_list], current[3])
  redis.call("ZADD", KEYS[new_list], 0, current[3])
end
if ARGV[8] == "1" then
  redis.call("ZADD", KEYS[3], ARGV[9], ARGV[1])
else
  redis.call("ZREM", KEYS[3], ARGV[1])
end
return record(KEYS[2], ARGV[10], ${COMMIT_FIRST_EVENT_KEY}, ${HEAD_ARGS + 1}, {1})
`;

/** KEYS: stream, then one event-id list per event. ARGV: stream max length, then the events. */
const APPEND_LUA = `#!lua
${RECORD}
local bad = check_events(2, 2, {"stream"})
if bad then return bad end
return record(KEYS[1], ARGV[1], 2, 2, {})
`;

/**
 * Reads a page of a list index, newest first, filtering by agent and action.
 * KEYS: the list index. ARGV: request key prefix, max bound, min bound (ZRANGE
 * BYLEX syntax), limit, scan budget, agent filter (1/0), agent, action filter
 * (1/0), action. Replies `{exhausted (1/0), last member read or "", json...}`.
 * It reads request hashes it cannot declare (their ids come from the index);
 * they share the index's hash tag, so they are in its Cluster slot.
 */
const LIST_LUA = `#!lua flags=no-writes
local max, min = ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local reply = {0, ""}
local scanned = 0
while true do
  local want = math.min(128, budget - scanned)
  if want <= 0 then return reply end
  local batch = redis.call("ZRANGE", KEYS[1], max, min, "BYLEX", "REV", "LIMIT", 0, want)
  for _, member in ipairs(batch) do
    scanned = scanned + 1
    reply[2] = member
    local id = string.sub(member, 29)
    local f = redis.call("HMGET", ARGV[1] .. id, "d", "a", "x")
    if f[1] and (ARGV[6] == "0" or f[2] == ARGV[7]) and (ARGV[8] == "0" or f[3] == ARGV[9]) then
      reply[#reply + 1] = f[1]
      if #reply - 2 >= limit then return reply end
    end
  end
  if #batch < want then
    reply[1] = 1
    return reply
  end
  max = "(" .. string.sub(reply[2], 1, 27)
end
`;

/** Every script takes its keys and its arguments as string lists. */
function parseKeysAndArgs(parser: CommandParser, keys: string[], args: string[]): void {
  parser.pushKeysLength(keys);
  parser.push(...args);
}

/** The reply is decoded and checked by the store, not by node-redis. */
const rawReply = (reply: unknown): unknown => reply;

/**
 * The store's scripts, for node-redis's `scripts` client option: the client
 * runs each with EVALSHA and falls back to EVAL when Redis does not know it
 * yet (after a restart or failover). `connectRedis` registers them; a client
 * made elsewhere must pass `scripts: redisStoreScripts` too.
 */
export const redisStoreScripts = {
  writCreate: defineScript({
    SCRIPT: CREATE_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writCommit: defineScript({
    SCRIPT: COMMIT_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writAppend: defineScript({
    SCRIPT: APPEND_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writList: defineScript({
    SCRIPT: LIST_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
};

export type RedisStoreScripts = typeof redisStoreScripts;
