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

/** Fixed arguments before the events in the create script. */
const HEAD_ARGS = 10;

/**
 * Records the events in ARGV from `first_arg` on, five arguments each: first
 * in the stream (the script's first write), then each id in its request's
 * list. KEYS from `first_key` on are the id lists of the events that belong to
 * a request, in order: an event about writ itself (request id "") has none. Adding never trims: trimming is a separate script
 * (`TRIM_LUA`) that knows how far every audit log has read.
 */
const RECORD = `
local function check_events(first_key, first_arg, types)
  local n = #ARGV - first_arg + 1
  if n < 0 or n % ${EVENT_ARGS} ~= 0 then
    return redis.error_reply("writ: malformed event arguments")
  end
  local lists = 0
  for a = first_arg + 1, #ARGV, ${EVENT_ARGS} do
    if ARGV[a] ~= "" then lists = lists + 1 end
  end
  if #KEYS - first_key + 1 ~= lists then
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

-- Appends the events to the stream, returning their ids, or nil and the
-- error to reply. Each script calls it before its first other write: should
-- the stream refuse an entry (say, one written by hand near the last possible
-- id), the entries this call already added are deleted again, and nothing of
-- the change is written, not even some of its events.
local function add_events(stream, first_arg, ids)
  local added = {}
  for a = first_arg, #ARGV, ${EVENT_ARGS} do
    local id = redis.pcall("XADD", stream, "*", "type", ARGV[a], "request_id", ARGV[a + 1],
      "time", ARGV[a + 2], "actor", ARGV[a + 3], "data", ARGV[a + 4])
    if type(id) == "table" and id.err then
      if #added > 0 then redis.call("XDEL", stream, unpack(added)) end
      return nil, id
    end
    added[#added + 1] = id
    ids[#ids + 1] = id
  end
  return ids
end

-- Lists each event that belongs to a request under it, in order; ids from
-- add_events, after any leading entries that are not event ids (skip).
local function link_events(first_key, first_arg, ids, skip)
  local k = first_key
  local i = skip + 1
  for a = first_arg, #ARGV, ${EVENT_ARGS} do
    if ARGV[a + 1] ~= "" then
      redis.call("RPUSH", KEYS[k], ids[i])
      k = k + 1
    end
    i = i + 1
  end
  return ids
end
`;

/**
 * KEYS: request, stream, due, list, list of its status, creation counter,
 * escalation index, then the event-id list of each event that belongs to a
 * request. ARGV: id, json, version, status, agent, action, live (1/0),
 * expires-at, created-at digits, escalation time ("" for none), then the
 * events. Replies `{0}` if the id exists, else `{1, event ids...}`.
 */
const CREATE_LUA = `#!lua
${RECORD}
local bad = check_events(8, ${HEAD_ARGS + 1},
  {"hash", "stream", "zset", "zset", "zset", "string", "zset"})
if bad then return bad end
if redis.call("EXISTS", KEYS[1]) == 1 then return {0} end
-- Read and written back rather than INCR, so that the stream takes the first
-- write; only what INCR would take counts (tonumber also reads "nan", "1e3").
local counter = redis.call("GET", KEYS[6]) or "0"
if not string.match(counter, "^%-?%d+$") or #counter > 20 then
  return redis.error_reply("writ: the creation counter is not an integer")
end
local n = tonumber(counter) + 1
if n >= 1e12 then return redis.error_reply("writ: creation counter exhausted") end
local ids, refused = add_events(KEYS[2], ${HEAD_ARGS + 1}, {1})
if not ids then return refused end
redis.call("SET", KEYS[6], string.format("%d", n))
local member = ARGV[9] .. string.format("%012d", n) .. ":" .. ARGV[1]
redis.call("HSET", KEYS[1], "d", ARGV[2], "v", ARGV[3], "s", ARGV[4], "a", ARGV[5],
  "x", ARGV[6], "m", member)
redis.call("ZADD", KEYS[4], 0, member)
redis.call("ZADD", KEYS[5], 0, member)
if ARGV[7] == "1" then redis.call("ZADD", KEYS[3], ARGV[8], ARGV[1]) end
if ARGV[10] ~= "" then redis.call("ZADD", KEYS[7], ARGV[10], ARGV[1]) end
return link_events(8, ${HEAD_ARGS + 1}, ids, 1)
`;

const STATUS_SET = `{ ${REQUEST_STATUSES.map((s) => `["${s}"] = true`).join(", ")} }`;
/** Fixed arguments before the events in the commit script. */
const COMMIT_HEAD_ARGS = HEAD_ARGS + 2;

/**
 * KEYS: request, stream, due, escalation index, after-review index, then the
 * event-id list of each event that belongs to a request. ARGV: id, expected
 * version, json, new version, status, agent, action, live (1/0), expires-at,
 * the status lists' key prefix, escalation time ("" for none), awaiting its
 * review after the fact (1/0), then the events. Replies `{0}` when the stored version is not the expected one
 * (or the request does not exist), writing nothing; else `{1, event ids...}`.
 *
 * The list of the stored status is known only once the script has read the
 * request, so the script names both status lists from the prefix (they share
 * the request's hash tag, so they are in its Cluster slot) and checks their
 * types itself, before its first write.
 */
const COMMIT_LUA = `#!lua
${RECORD}
local STATUS = ${STATUS_SET}
local bad = check_events(6, ${COMMIT_HEAD_ARGS + 1}, {"hash", "stream", "zset", "zset", "zset"})
if bad then return bad end
local current = redis.call("HMGET", KEYS[1], "v", "s", "m")
if current[1] ~= ARGV[2] then return {0} end
if not STATUS[current[2]] or not STATUS[ARGV[5]] or not current[3] then
  return redis.error_reply("writ: unreadable request record")
end
local old_list = ARGV[10] .. current[2]
local new_list = ARGV[10] .. ARGV[5]
for _, list in ipairs({old_list, new_list}) do
  local actual = redis.call("TYPE", list)["ok"]
  if actual ~= "none" and actual ~= "zset" then
    return redis.error_reply("writ: a key holds the wrong type")
  end
end
local ids, refused = add_events(KEYS[2], ${COMMIT_HEAD_ARGS + 1}, {1})
if not ids then return refused end
redis.call("HSET", KEYS[1], "d", ARGV[3], "v", ARGV[4], "s", ARGV[5], "a", ARGV[6], "x", ARGV[7])
if current[2] ~= ARGV[5] then
  redis.call("ZREM", old_list, current[3])
  redis.call("ZADD", new_list, 0, current[3])
end
if ARGV[8] == "1" then
  redis.call("ZADD", KEYS[3], ARGV[9], ARGV[1])
else
  redis.call("ZREM", KEYS[3], ARGV[1])
end
if ARGV[11] ~= "" then
  redis.call("ZADD", KEYS[4], ARGV[11], ARGV[1])
else
  redis.call("ZREM", KEYS[4], ARGV[1])
end
-- The after-review index holds list members, like the status lists, so it
-- pages newest first with the same script and cursors.
if ARGV[12] == "1" then
  redis.call("ZADD", KEYS[5], 0, current[3])
else
  redis.call("ZREM", KEYS[5], current[3])
end
return link_events(6, ${COMMIT_HEAD_ARGS + 1}, ids, 1)
`;

/**
 * KEYS: stream, then the event-id list of each event that belongs to a
 * request. ARGV: the events.
 */
const APPEND_LUA = `#!lua
${RECORD}
local bad = check_events(2, 1, {"stream"})
if bad then return bad end
local ids, refused = add_events(KEYS[1], 1, {})
if not ids then return refused end
return link_events(2, 1, ids, 0)
`;

/**
 * Reads a page of a list index, newest first, filtering by agent and action.
 * KEYS: the list index. ARGV: request key prefix, max bound, min bound (ZRANGE
 * BYLEX syntax), limit, scan budget, agent filter (1/0), agent, action filter
 * (1/0), action. Replies `{exhausted (1/0), last member read or "", id, json,
 * id, json...}`: each record with the id its member names, for the caller to
 * check that the record is that request's (as `get` does), in the same reply.
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
      reply[#reply + 1] = id
      reply[#reply + 1] = f[1]
      if (#reply - 2) / 2 >= limit then return reply end
    end
  end
  if #batch < want then
    reply[1] = 1
    return reply
  end
  max = "(" .. string.sub(reply[2], 1, 27)
end
`;

/**
 * Puts one request's entries in the due, escalation and after-review indexes
 * right from its stored record, as the commit script that wrote the record
 * would have left them. KEYS: request, due, escalation index, after-review
 * index. ARGV: id, the version read ("" when there was no record), live
 * (1/0), expires-at, escalation time ("" for none), awaiting its review after
 * the fact (1/0). Changes nothing unless the record is still the one read: a
 * commit since then has written the indexes itself, and a request created
 * since then has them from the create script. Replies with the number of
 * entries added, moved or removed.
 */
const REINDEX_LUA = `#!lua
for i = 2, #KEYS do
  local actual = redis.call("TYPE", KEYS[i])["ok"]
  if actual ~= "none" and actual ~= "zset" then
    return redis.error_reply("writ: a key holds the wrong type")
  end
end
if ARGV[2] == "" then
  if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
  -- The after-review index holds list members, which only the record names;
  -- the list script passes over a member without a record.
  return redis.call("ZREM", KEYS[2], ARGV[1]) + redis.call("ZREM", KEYS[3], ARGV[1])
end
local current = redis.call("HMGET", KEYS[1], "v", "m")
if current[1] ~= ARGV[2] then return 0 end
local changed = 0
if ARGV[3] == "1" then
  changed = changed + redis.call("ZADD", KEYS[2], "CH", ARGV[4], ARGV[1])
else
  changed = changed + redis.call("ZREM", KEYS[2], ARGV[1])
end
if ARGV[5] ~= "" then
  changed = changed + redis.call("ZADD", KEYS[3], "CH", ARGV[5], ARGV[1])
else
  changed = changed + redis.call("ZREM", KEYS[3], ARGV[1])
end
if current[2] then
  if ARGV[6] == "1" then
    changed = changed + redis.call("ZADD", KEYS[4], "CH", 0, current[2])
  else
    changed = changed + redis.call("ZREM", KEYS[4], current[2])
  end
end
return changed
`;

/** Redis's own clock in ms: every replica's records are timed by one clock, so no skew counts. */
const NOW_MS = `
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * Records how far one audit log has fsynced the stream. KEYS: the followers
 * hash, the stream. ARGV: follower id, stream id ("0-0" for nothing yet).
 * Replies `{created, first}`: 1 if the follower had no record (new, or dropped
 * by a trim as not heard from within the timeout), and the stream's first
 * entry id ("" while it is empty), so the caller can tell whether entries it
 * has not read were trimmed while it was away.
 */
const FOLLOW_LUA = `#!lua
${NOW_MS}
local created = redis.call("HSET", KEYS[1], ARGV[1], ARGV[2] .. " " .. string.format("%.0f", now_ms()))
local first = redis.call("XRANGE", KEYS[2], "-", "+", "COUNT", 1)
if #first == 0 then return {created, ""} end
return {created, first[1][1]}
`;

/**
 * Trims the stream, never past what an audit log heard from recently has not
 * fsynced. KEYS: the stream, the followers hash. ARGV: the length to trim
 * down to, the follower timeout (ms), the most entries one call removes.
 *
 * Followers not heard from within the timeout are dropped from the hash and
 * hold nothing back; without any live follower nothing is trimmed. Of the
 * others the slowest cursor bounds the trim: `XTRIM MINID ~` removes only
 * whole stream nodes whose every entry is older than it, and `LIMIT` keeps it
 * from removing more than the excess over the length. Replies
 * `{removed, length after, live followers, slowest cursor or ""}`.
 */
const TRIM_LUA = `#!lua
${NOW_MS}
-- Whether stream id a is older than b; canonical ids have no leading zeros,
-- so comparing digit counts, then digits, compares numbers of any size.
local function older(a, b)
  local am, as = string.match(a, "^(%d+)%-(%d+)$")
  local bm, bs = string.match(b, "^(%d+)%-(%d+)$")
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
local now = now_ms()
local timeout = tonumber(ARGV[2])
local fields = redis.call("HGETALL", KEYS[2])
local slowest = nil
local live = 0
for i = 1, #fields, 2 do
  local cursor, at = string.match(fields[i + 1], "^(%d+%-%d+) (%d+)$")
  -- An unreadable record could be a follower's: trim nothing rather than guess.
  if not cursor then return redis.error_reply("writ: unreadable stream follower record") end
  if now - tonumber(at) > timeout then
    redis.call("HDEL", KEYS[2], fields[i])
  else
    live = live + 1
    if slowest == nil or older(cursor, slowest) then slowest = cursor end
  end
end
local length = redis.call("XLEN", KEYS[1])
local excess = length - tonumber(ARGV[1])
if slowest == nil or excess <= 0 then return {0, length, live, slowest or ""} end
local removed = redis.call("XTRIM", KEYS[1], "MINID", "~", slowest,
  "LIMIT", math.min(excess, tonumber(ARGV[3])))
return {removed, length - removed, live, slowest}
`;

/**
 * Does nothing, but as a writing script: Redis refuses it wherever writ's
 * changes would be refused before they run, on a read-only replica
 * (READONLY), out of memory (OOM) or unable to persist (MISCONF). KEYS: one
 * of writ's keys, which only names its shard (Cluster), or none. Replies 1.
 */
const PROBE_LUA = `#!lua
return 1
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
  writReindex: defineScript({
    SCRIPT: REINDEX_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writFollow: defineScript({
    SCRIPT: FOLLOW_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writTrim: defineScript({
    SCRIPT: TRIM_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
  writProbe: defineScript({
    SCRIPT: PROBE_LUA,
    parseCommand: parseKeysAndArgs,
    transformReply: rawReply,
  }),
};

export type RedisStoreScripts = typeof redisStoreScripts;
