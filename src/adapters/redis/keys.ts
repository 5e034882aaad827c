import { REQUEST_STATUSES, type RequestStatus } from "../../domain/request.js";

/**
 * Where writ keeps its state in Redis. Every key carries the same hash tag,
 * `{<prefix>}`, so that on Redis Cluster all of them hash to one slot: a Lua
 * script may only touch keys of one slot, and the events must land in one
 * stream to keep one total order across replicas. writ's data therefore
 * lives on one shard, which is fine: a credential broker makes a few
 * thousand state changes per second at the very most, far below what one
 * Redis shard serves (see docs/operations.md, "Redis Cluster").
 */
export interface KeyLayout {
  /** `{writ}:req:<id>`: a hash of the request's JSON (`d`), version (`v`), status (`s`), agent (`a`), action (`x`) and list member (`m`). */
  request(id: string): string;
  /**
   * `{writ}:reqev:<id>`: the stream ids of the request's events, in order.
   * Events about writ itself (request id "") are in the stream only.
   */
  requestEvents(id: string): string;
  /** `{writ}:list`: every request, as list members (see {@link listMember}). */
  readonly list: string;
  /** `{writ}:list:<status>`: the requests in one status. */
  listOf(status: RequestStatus): string;
  /** `{writ}:list:`, which a status completes into `listOf(status)`. */
  readonly statusListPrefix: string;
  /** `{writ}:due`: live requests scored by `expiresAt`. */
  readonly due: string;
  /** `{writ}:escalate`: requests whose escalation is still to come, scored by its time. */
  readonly escalations: string;
  /**
   * `{writ}:afterreview`: requests waiting for their review after the fact
   * (`@review_after`, credential issued, not yet reviewed), as list members.
   */
  readonly awaitingReviewAfter: string;
  /** `{writ}:seq`: the creation counter that orders requests created in the same millisecond. */
  readonly seq: string;
  /** The event stream. */
  readonly stream: string;
  /**
   * `{writ}:followers`: a hash of how far each audit log following the stream
   * has fsynced it (`<stream id> <Redis time in ms>` by follower id); trimming
   * never passes the slowest one heard from recently.
   */
  readonly followers: string;
  /** The prefix of request hashes, for the list script that reads them by id. */
  readonly requestPrefix: string;
}

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * The hash tag Redis Cluster hashes a key by: what lies between the first `{`
 * and the next `}`, when that is not empty; else the whole key.
 */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open < 0) return key;
  const close = key.indexOf("}", open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** Builds the key layout; a prefix or stream key that would break the one-slot rule is a TypeError. */
export function keyLayout(prefix: string, streamKey: string | undefined): KeyLayout {
  if (!PREFIX.test(prefix)) {
    throw new TypeError("Redis prefix must be 1-64 characters of A-Z a-z 0-9 _ . : -");
  }
  const base = `{${prefix}}`;
  const stream = streamKey ?? `${base}:events`;
  if (stream.length > 256 || hashTag(stream) !== prefix) {
    throw new TypeError(
      `Redis stream key must carry the hash tag {${prefix}} (e.g. "${base}:events"), so that it lives in the same Cluster slot as writ's other keys`,
    );
  }
  const statusListPrefix = `${base}:list:`;
  const statusKeys = new Map(REQUEST_STATUSES.map((s) => [s, `${statusListPrefix}${s}`]));
  return {
    request: (id) => `${base}:req:${id}`,
    requestEvents: (id) => `${base}:reqev:${id}`,
    list: `${base}:list`,
    listOf: (status) => statusKeys.get(status) as string,
    statusListPrefix,
    due: `${base}:due`,
    escalations: `${base}:escalate`,
    awaitingReviewAfter: `${base}:afterreview`,
    seq: `${base}:seq`,
    stream,
    followers: `${base}:followers`,
    requestPrefix: `${base}:req:`,
  };
}

/** Digits of `createdAt` in a list member: milliseconds up to year 33658. */
const TIME_DIGITS = 15;
/** Digits of the creation counter in a list member. */
const SEQ_DIGITS = 12;
/** A list cursor: the time and counter digits of the last member a page read. */
export const CURSOR_LENGTH = TIME_DIGITS + SEQ_DIGITS;
const CURSOR = new RegExp(`^\\d{${CURSOR_LENGTH}}$`);
export const MAX_CREATED_AT = 10 ** TIME_DIGITS - 1;

/** `createdAt` as fixed-width digits, so that byte order is time order. */
export function timeDigits(ms: number): string {
  return String(ms).padStart(TIME_DIGITS, "0");
}

/** Whether `cursor` has the form of a list cursor this store hands out. */
export function isListCursor(cursor: string): boolean {
  return CURSOR.test(cursor);
}

/** The list cursor of a list member (`<time digits><seq digits>:<id>`). */
export function cursorOf(member: string): string {
  return member.slice(0, CURSOR_LENGTH);
}
