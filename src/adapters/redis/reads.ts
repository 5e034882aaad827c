import { awaitsReviewAfter } from "../../domain/after-review.js";
import type { RecordedEvent } from "../../domain/events.js";
import type { AccessRequest } from "../../domain/request.js";
import type {
  EventQuery,
  EventScan,
  EventScanQuery,
  RequestPage,
  RequestQuery,
} from "../../ports/store.js";
import { compareStreamIds, corrupt, decodeEntries, decodeRequest, isStreamId } from "./codec.js";
import type { RedisStoreConnection } from "./connection.js";
import { cursorOf, type KeyLayout, MAX_CREATED_AT, timeDigits } from "./keys.js";

/**
 * The store's reads that page through indexes: requests (`list`) and events.
 *
 * Costs, for N requests or stream entries:
 * - `list` without filters, by status (each status has its own index), or of those awaiting
 *   their review after the fact (an index of its own): O(log N + page).
 *   Agent and action filters are applied while reading, so they cost the entries read past
 *   non-matching ones; one call reads at most `LIST_SCAN_BUDGET` entries and then returns
 *   a shorter page with a cursor, so a rare match never holds Redis or the caller for long.
 * - `events` of one request: O(log E + page) for E events of that request, from its list of
 *   stream ids, whose start after `after` is found by a binary search; with `scanEvents`, at
 *   most `scanLimit` of them are read.
 * - `events` by type or time: a scan of the stream from `after`, in batches.
 * - `scanEvents`: the same scan, stopped after `scanLimit` entries: O(log N + scanLimit).
 */

/** Most list entries one `list` call reads before returning a partial page with a cursor. */
export const LIST_SCAN_BUDGET = 5_000;
/** Entries one script call reads, so that no call holds Redis for long. */
const LIST_SCAN_PER_CALL = 1_000;
/** Stream entries, or a request's event ids, read per round trip. */
const EVENT_BATCH = 500;

/**
 * The filters a stream read applies itself. Event times come from writ's
 * clock, not Redis's, so time bounds cannot be turned into id ranges.
 */
function matches(query: Omit<EventQuery, "requestId" | "limit">, event: RecordedEvent): boolean {
  return (
    (query.type === undefined || event.type === query.type) &&
    (query.since === undefined || event.time >= query.since) &&
    (query.until === undefined || event.time < query.until)
  );
}

/**
 * The position in a request's list of event ids of the first id after
 * `after`. The list is in stream order (each id is pushed in the step that
 * adds its entry to the stream, and nothing removes ids), so a binary search
 * finds it in about log2(length) reads of one id each, whether or not `after`
 * is itself an id of the list. Walking the list from its start instead costs
 * every id before the cursor, so paging through a request with many events
 * (a token replayed in a loop) would cost the square of their number.
 */
async function positionAfter(
  client: RedisStoreConnection,
  key: string,
  after: string,
  signal: AbortSignal | undefined,
): Promise<number> {
  const length = await client.lLen(key);
  if (typeof length !== "number") throw corrupt();
  let low = 0;
  let high = length;
  while (low < high) {
    signal?.throwIfAborted();
    const middle = Math.floor((low + high) / 2);
    const id = await client.lIndex(key, middle);
    if (typeof id !== "string" || !isStreamId(id)) throw corrupt();
    if (compareStreamIds(id, after) > 0) high = middle;
    else low = middle + 1;
  }
  return low;
}

/**
 * Events of one request, in stream order, from its list of event ids. Stops
 * before the next round trip once `signal` aborts (the caller was answered).
 * Each id is read with a command of its own, so with `scanLimit` the read
 * reads at most that many ids after `query.after` and then says where it
 * stopped (`next`), as a scan of the whole stream does.
 */
export async function readRequestEvents(
  client: RedisStoreConnection,
  keys: KeyLayout,
  requestId: string,
  query: EventQuery,
  signal?: AbortSignal,
  scanLimit = Number.POSITIVE_INFINITY,
): Promise<EventScan> {
  const items: RecordedEvent[] = [];
  let left = scanLimit;
  const key = keys.requestEvents(requestId);
  const batchAt = async (start: number): Promise<unknown[]> => {
    signal?.throwIfAborted();
    const ids = await client.lRange(key, start, start + EVENT_BATCH - 1);
    if (!Array.isArray(ids)) throw corrupt();
    return ids;
  };
  let start = 0;
  let ids = await batchAt(0);
  // Most requests hold a few events, read in the one batch above. A long
  // list whose first batch ends before the cursor: find where the cursor
  // falls rather than walk every batch before it.
  const lastOfFirst = ids.at(-1);
  if (
    query.after !== undefined &&
    ids.length === EVENT_BATCH &&
    typeof lastOfFirst === "string" &&
    isStreamId(lastOfFirst) &&
    compareStreamIds(lastOfFirst, query.after) <= 0
  ) {
    start = await positionAfter(client, key, query.after, signal);
    ids = await batchAt(start);
  }
  for (; ; start += EVENT_BATCH, ids = await batchAt(start)) {
    const following = ids.filter(
      (id): id is string =>
        typeof id === "string" &&
        isStreamId(id) &&
        (query.after === undefined || compareStreamIds(id, query.after) > 0),
    );
    const wanted = following.slice(0, left);
    // One pipelined round trip per batch; an id trimmed from the stream reads as nothing.
    signal?.throwIfAborted();
    const entries = await Promise.all(wanted.map((id) => client.xRange(keys.stream, id, id)));
    for (const reply of entries) {
      for (const event of decodeEntries(reply)) {
        if (!matches(query, event)) continue;
        items.push(event);
        if (items.length >= query.limit) return { items, next: event.id };
      }
    }
    left -= wanted.length;
    const last = wanted.at(-1);
    // The budget ran out before the ids of this batch did, or at the end of a full batch.
    if (
      last !== undefined &&
      (wanted.length < following.length || (left <= 0 && ids.length === EVENT_BATCH))
    ) {
      return { items, next: last };
    }
    if (ids.length < EVENT_BATCH) return { items };
  }
}

/**
 * Events of the whole stream after `query.after`, filtered, in stream order.
 * A filter rarely matched pages through much of the stream; it stops before
 * the next page once `signal` aborts (the caller was answered).
 */
export async function readStreamEvents(
  client: RedisStoreConnection,
  keys: KeyLayout,
  query: EventQuery,
  signal?: AbortSignal,
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  const filtered =
    query.type !== undefined || query.since !== undefined || query.until !== undefined;
  let start = query.after === undefined ? "-" : `(${query.after}`;
  for (;;) {
    signal?.throwIfAborted();
    const count = filtered ? EVENT_BATCH : Math.min(query.limit - out.length, EVENT_BATCH);
    const batch = decodeEntries(await client.xRange(keys.stream, start, "+", { COUNT: count }));
    for (const event of batch) {
      if (!matches(query, event)) continue;
      out.push(event);
      if (out.length >= query.limit) return out;
    }
    const last = batch.at(-1);
    if (last === undefined || batch.length < count) return out;
    start = `(${last.id}`;
  }
}

/**
 * Events of the whole stream after `query.after`, filtered, in stream order,
 * reading at most `query.scanLimit` entries. `next` is the last entry read
 * when the page filled or the budget ran out: the scan may not have reached
 * the end, and the caller continues after it.
 */
export async function scanStreamEvents(
  client: RedisStoreConnection,
  keys: KeyLayout,
  query: EventScanQuery,
  signal?: AbortSignal,
): Promise<EventScan> {
  const items: RecordedEvent[] = [];
  let start = query.after === undefined ? "-" : `(${query.after}`;
  let left = query.scanLimit;
  for (;;) {
    signal?.throwIfAborted();
    const count = Math.min(left, EVENT_BATCH);
    const batch = decodeEntries(await client.xRange(keys.stream, start, "+", { COUNT: count }));
    for (const event of batch) {
      if (!matches(query, event)) continue;
      items.push(event);
      if (items.length >= query.limit) return { items, next: event.id };
    }
    const last = batch.at(-1);
    if (last === undefined || batch.length < count) return { items };
    left -= batch.length;
    if (left === 0) return { items, next: last.id };
    start = `(${last.id}`;
  }
}

/**
 * The lexical bounds of a list read. List members start with the creation
 * time's digits, so time bounds are lexical bounds; `since` and `until`
 * round up to whole milliseconds. Undefined when nothing can match.
 */
function listBounds(query: RequestQuery): { max: string; min: string } | undefined {
  let max = "+";
  const tighten = (bound: string) => {
    if (max === "+" || bound < max.slice(1)) max = `(${bound}`;
  };
  if (query.until !== undefined) {
    const until = Math.ceil(query.until);
    if (until <= 0) return undefined;
    if (until <= MAX_CREATED_AT) tighten(timeDigits(until));
  }
  if (query.cursor !== undefined) tighten(query.cursor);
  let min = "-";
  if (query.since !== undefined && query.since > 0) {
    const since = Math.ceil(query.since);
    if (since > MAX_CREATED_AT) return undefined;
    min = `[${timeDigits(since)}`;
  }
  return { max, min };
}

/**
 * A page of requests, newest first. `run` executes each script call under
 * the store's deadline and error handling. The cursor is the time and
 * counter digits of the last entry read: later creations never shift it.
 */
export async function readRequestPage(
  client: RedisStoreConnection,
  keys: KeyLayout,
  query: RequestQuery,
  run: <T>(call: () => Promise<T>) => Promise<T>,
): Promise<RequestPage> {
  const bounds = listBounds(query);
  if (bounds === undefined) return { items: [] };
  let { max } = bounds;
  const index =
    query.awaiting === "review_after"
      ? keys.awaitingReviewAfter
      : query.status === undefined
        ? keys.list
        : keys.listOf(query.status);
  const items: AccessRequest[] = [];
  let scanned = 0;
  for (;;) {
    const budget = Math.min(LIST_SCAN_PER_CALL, LIST_SCAN_BUDGET - scanned);
    const { exhausted, last, found } = await run(async () => {
      const reply = await client.writList(
        [index],
        [
          keys.requestPrefix,
          max,
          bounds.min,
          String(query.limit - items.length),
          String(budget),
          query.agentId !== undefined ? "1" : "0",
          query.agentId ?? "",
          query.action !== undefined ? "1" : "0",
          query.action ?? "",
        ],
      );
      if (
        !Array.isArray(reply) ||
        reply.length < 2 ||
        reply.length % 2 !== 0 ||
        typeof reply[1] !== "string"
      ) {
        throw corrupt();
      }
      const found: AccessRequest[] = [];
      for (let i = 2; i < reply.length; i += 2) {
        const id: unknown = reply[i];
        if (typeof id !== "string") throw corrupt();
        // A record stored under another request's key is unreadable, as in `get`.
        const request = decodeRequest(reply[i + 1], id);
        // The index may hold a member whose request no longer waits (a hand
        // edit, a restore, a writer that did not keep it): the record decides.
        if (query.awaiting === "review_after" && !awaitsReviewAfter(request)) continue;
        found.push(request);
      }
      return { exhausted: reply[0] === 1, last: reply[1] as string, found };
    });
    items.push(...found);
    scanned += budget;
    if (exhausted || last === "") return { items };
    if (items.length >= query.limit || scanned >= LIST_SCAN_BUDGET) {
      return { items, next: cursorOf(last) };
    }
    max = `(${cursorOf(last)}`;
  }
}
