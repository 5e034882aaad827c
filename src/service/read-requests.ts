import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { Principal } from "../domain/principal.js";
import { type AccessRequest, isLive, type RequestStatus } from "../domain/request.js";
import { compareStreamIds, eventIdForm } from "../domain/stream-id.js";
import type { EventQuery, RequestPage, RequestQuery } from "../ports/store.js";
import { assertVisible, requireKind } from "./access.js";
import type { BrokerDeps } from "./deps.js";
import { loadSettled } from "./record.js";

/**
 * The caller's long-poll slot, taken on the first actual wait (a read that
 * answers at once takes none) and given back by `release`.
 */
function waitSlot(deps: BrokerDeps, principal: Principal) {
  let release: (() => void) | undefined;
  return {
    take() {
      release ??= deps.waitLimit?.begin(principal) ?? (() => {});
    },
    release: () => release?.(),
  };
}

export interface WaitOptions {
  /** Long-poll up to this long (0: answer at once). */
  readonly waitSeconds?: number;
  /** Wait while the status is this one; by default, the status at the call. */
  readonly whileStatus?: RequestStatus;
  readonly signal?: AbortSignal;
}

/**
 * Reads one request. With `waitSeconds`, long-polls: returns as soon as the
 * status differs from `whileStatus` (or from the status at the call), or when
 * the wait ends. A caller already holding its share of long-polls
 * (`deps.waitLimit`) gets `too_many_waits` instead of waiting.
 */
export async function getRequest(
  deps: BrokerDeps,
  principal: Principal,
  id: string,
  options: WaitOptions = {},
): Promise<AccessRequest> {
  const { waitSeconds = 0 } = options;
  // Checked before the lookup, so the answer does not reveal whether the id exists.
  requireKind(principal, "agent", "reviewer", "auditor");
  let request = await loadSettled(deps, id);
  assertVisible(request, principal);
  const initialStatus = options.whileStatus ?? request.status;
  const waitUntil = Date.now() + waitSeconds * 1000;
  // Only a long-poll needs the combined signal; a plain read never waits.
  const wait = waitSignal(waitSeconds > 0 ? options.signal : undefined, deps.stopping);
  const slot = waitSlot(deps, principal);
  try {
    // A final status never changes, so there is nothing to wait for.
    while (isLive(request.status) && request.status === initialStatus && !wait.signal?.aborted) {
      const remaining = waitUntil - Date.now();
      if (remaining <= 0) break;
      // Wake at the stage's deadline too, so a waiter sees the expiry when it happens
      // (loadSettled records it). The deadline is on the injected clock.
      const untilDeadline = Math.max(0, request.expiresAt - deps.clock.now()) + 1;
      slot.take();
      await deps.store.waitForChange(
        id,
        request.version,
        Math.min(remaining, untilDeadline),
        wait.signal,
      );
      request = await loadSettled(deps, id);
    }
  } finally {
    slot.release();
    wait.release();
  }
  return request;
}

/**
 * The caller's signal and the shutdown signal combined: a long-poll ends on
 * either. Listeners are removed when the wait ends (`AbortSignal.any` would tie
 * every poll to the process-long shutdown signal).
 */
function waitSignal(
  caller: AbortSignal | undefined,
  stopping: AbortSignal | undefined,
): { signal: AbortSignal | undefined; release: () => void } {
  if (caller === undefined || stopping === undefined) {
    return { signal: caller ?? stopping, release: () => {} };
  }
  const both = new AbortController();
  const abort = () => both.abort();
  if (caller.aborted || stopping.aborted) both.abort();
  caller.addEventListener("abort", abort, { once: true });
  stopping.addEventListener("abort", abort, { once: true });
  return {
    signal: both.signal,
    release: () => {
      caller.removeEventListener("abort", abort);
      stopping.removeEventListener("abort", abort);
    },
  };
}

export async function listRequests(
  deps: BrokerDeps,
  principal: Principal,
  query: RequestQuery,
): Promise<RequestPage> {
  requireKind(principal, "reviewer", "auditor");
  return deps.store.list(query);
}

export interface EventWaitOptions {
  /** Long-poll up to this long for a matching event when there is none yet (0: answer at once). */
  readonly waitSeconds?: number;
  readonly signal?: AbortSignal;
}

/**
 * Stream entries one read filtered by type or time (and not by request)
 * passes over. Read and decoded at about four microseconds an entry from
 * Redis, a call takes under a tenth of a second however long the stream, far
 * inside the store's 5 s deadline; a caller walks on with `next`.
 */
export const EVENT_SCAN_BUDGET = 20_000;

/**
 * Events of one request that one read filtered by type or time passes over.
 * A request's events are read one command each, about ten times the cost of
 * a stream entry read in a range; a request can hold very many of them (a
 * resource server that retries a used token records a blocked replay a try).
 */
export const REQUEST_EVENT_SCAN_BUDGET = 2_000;

/**
 * Recorded events matching `query`, in stream order; `next`, set when the
 * read stopped before it knew the stream had ended (a full page, or a
 * filtered read that spent its scan budget, with however few events,
 * even none): the caller continues after it; and `lastId`: the newest stream
 * id when the query ran. It is read first, so when there is no `next` every
 * event up to it was visible to the query: a follower whose page came back
 * empty may continue after it. With `waitSeconds`, an empty answer waits for new events, within
 * the caller's share of long-polls (`too_many_waits` beyond it), until the
 * wait is over, the caller leaves or the process begins to stop: then it
 * answers the current (possibly empty) page.
 *
 * `query.after` must be an event id of the store's own form
 * (`validation_failed` otherwise): a store reads an id of the other form as
 * no position at all, and would answer an empty page however many events
 * follow. The form shows once the stream holds an event.
 */
export async function listEvents(
  deps: BrokerDeps,
  principal: Principal,
  query: EventQuery,
  options: EventWaitOptions = {},
): Promise<{
  items: readonly RecordedEvent[];
  next: string | undefined;
  lastId: string | undefined;
}> {
  requireKind(principal, "auditor");
  const { waitSeconds = 0 } = options;
  const afterForm = query.after === undefined ? undefined : eventIdForm(query.after);
  if (query.after !== undefined && afterForm === undefined) throw notAnEventId();
  const waitUntil = Date.now() + waitSeconds * 1000;
  // Only a long-poll needs the combined signal; a plain read never waits.
  const wait = waitSignal(waitSeconds > 0 ? options.signal : undefined, deps.stopping);
  const slot = waitSlot(deps, principal);
  // Where the next read starts: the caller's `after` at first, then how far
  // the reads before it found nothing.
  let from = query;
  try {
    for (;;) {
      const lastId = await deps.store.lastEventId();
      if (afterForm !== undefined && lastId !== undefined && eventIdForm(lastId) !== afterForm) {
        throw notAnEventId();
      }
      const { items, next } = await readEvents(deps, from);
      const remaining = waitUntil - Date.now();
      // A read that stopped on its budget answers at once, empty or not: the
      // events past it are there to read now, not to wait for.
      if (items.length > 0 || next !== undefined || wait.signal?.aborted || remaining <= 0) {
        return { items, next, lastId };
      }
      // Nothing up to `lastId` matched: the next read starts past it, so that
      // each event that does not match costs one look, not a read of the whole
      // range from the caller's `after` again (up to the scan budget, for every
      // event appended while the caller waits).
      if (
        lastId !== undefined &&
        (from.after === undefined || compareStreamIds(lastId, from.after) > 0)
      ) {
        from = { ...from, after: lastId };
      }
      slot.take();
      // Waiting past what the query already covered: events that do not match the
      // filters wake the loop once each, never spin it. On an empty stream any
      // event ends the wait: the caller's `after` is not waited on, since its form
      // could not be checked against the stream's yet.
      await deps.store.waitForEvents(lastId, remaining, wait.signal);
    }
  } finally {
    slot.release();
    wait.release();
  }
}

/**
 * One read of `listEvents`. A filter by type or time costs the entries it
 * passes over (of the whole stream, or of one request), so it is bounded; the
 * other reads cost their page (with `requestId`, plus a binary search for
 * `after` in that request's event ids) and are read as they are.
 */
async function readEvents(
  deps: BrokerDeps,
  query: EventQuery,
): Promise<{ items: readonly RecordedEvent[]; next: string | undefined }> {
  const filtered =
    query.type !== undefined || query.since !== undefined || query.until !== undefined;
  if (filtered) {
    const scanLimit = query.requestId === undefined ? EVENT_SCAN_BUDGET : REQUEST_EVENT_SCAN_BUDGET;
    const scan = await deps.store.scanEvents({ ...query, scanLimit });
    return { items: scan.items, next: scan.next };
  }
  const items = await deps.store.events(query);
  return { items, next: items.length >= query.limit ? items.at(-1)?.id : undefined };
}

function notAnEventId(): WritError {
  return new WritError(
    "validation_failed",
    "after: not an event id of this stream; pass an id, next or last_id from an earlier answer.",
  );
}
