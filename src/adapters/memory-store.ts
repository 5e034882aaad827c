import { EventEmitter } from "node:events";
import { awaitsReviewAfter } from "../domain/after-review.js";
import { WritError } from "../domain/errors.js";
import { escalationDueAt } from "../domain/escalation.js";
import { type DomainEvent, NO_REQUEST, type RecordedEvent } from "../domain/events.js";
import { type AccessRequest, isLive } from "../domain/request.js";
import type {
  CommitResult,
  EventQuery,
  EventScan,
  EventScanQuery,
  RecentEventsQuery,
  RequestPage,
  RequestQuery,
  RequestStore,
} from "../ports/store.js";

export interface MemoryStoreOptions {
  /** Most events kept in the stream; older ones are dropped first (default 1,000,000). */
  maxEvents?: number;
}

/**
 * The embedded store for `writ dev` and tests: a real implementation of the
 * store port in one process. Each operation runs synchronously inside one
 * call, so the state change and its events are one atomic step by construction.
 */
/** The emitter channel for "the stream grew"; request ids never collide with it. */
const APPENDED = Symbol("appended");

export function createMemoryStore(options: MemoryStoreOptions = {}): RequestStore {
  const maxEvents = options.maxEvents ?? 1_000_000;
  const requests = new Map<string, AccessRequest>();
  // Creation order, newest last; lists page backwards from the end.
  const order: string[] = [];
  const stream: RecordedEvent[] = [];
  let lastSeq = 0;
  let closed = false;
  const changes = new EventEmitter();
  changes.setMaxListeners(0);

  function record(events: readonly DomainEvent[]): RecordedEvent[] {
    const recorded = events.map((e) => ({ ...e, id: String(++lastSeq) }));
    stream.push(...recorded);
    if (recorded.length > 0) changes.emit(APPENDED);
    if (stream.length > maxEvents) stream.splice(0, stream.length - maxEvents);
    return recorded;
  }

  /** Whether an event passes a query's type and time filters. */
  function matches(query: Omit<EventQuery, "requestId" | "limit">, e: RecordedEvent): boolean {
    return (
      (query.type === undefined || e.type === query.type) &&
      (query.since === undefined || e.time >= query.since) &&
      (query.until === undefined || e.time < query.until)
    );
  }

  /** Index in `stream` of the first event after the id `after` (stream ids are dense integers). */
  function indexAfter(after: string | undefined): number {
    const first = stream.length === 0 ? 0 : Number((stream[0] as RecordedEvent).id);
    return Math.max(0, (after === undefined ? 0 : Number(after)) - first + 1);
  }

  function assertOpen() {
    if (closed) throw new WritError("store_unavailable", "The store is closed.");
  }

  const store: RequestStore = {
    persistent: false,

    async create(request, events): Promise<CommitResult> {
      assertOpen();
      if (requests.has(request.id)) return { ok: false, reason: "conflict" };
      requests.set(request.id, structuredClone(request));
      order.push(request.id);
      const recorded = record(events);
      changes.emit(request.id);
      return { ok: true, events: recorded };
    },

    async get(id) {
      assertOpen();
      const found = requests.get(id);
      return found === undefined ? undefined : structuredClone(found);
    },

    async commit(next, expectedVersion, events): Promise<CommitResult> {
      assertOpen();
      const current = requests.get(next.id);
      if (current === undefined || current.version !== expectedVersion) {
        return { ok: false, reason: "conflict" };
      }
      requests.set(next.id, structuredClone(next));
      const recorded = record(events);
      changes.emit(next.id);
      return { ok: true, events: recorded };
    },

    async append(events) {
      assertOpen();
      return record(events);
    },

    async list(query: RequestQuery): Promise<RequestPage> {
      assertOpen();
      const index0 = query.cursor === undefined ? order.length - 1 : Number(query.cursor);
      // A cursor this store never handed out reads as the end, never as a restart.
      if (!Number.isInteger(index0) || index0 >= order.length) return { items: [] };
      let index = index0;
      const items: AccessRequest[] = [];
      for (; index >= 0 && items.length < query.limit; index--) {
        const request = requests.get(order[index] as string);
        if (request === undefined) continue;
        if (query.status !== undefined && request.status !== query.status) continue;
        if (query.awaiting === "review_after" && !awaitsReviewAfter(request)) continue;
        if (query.agentId !== undefined && request.agentId !== query.agentId) continue;
        if (query.action !== undefined && request.action !== query.action) continue;
        if (query.since !== undefined && request.createdAt < query.since) continue;
        if (query.until !== undefined && request.createdAt >= query.until) continue;
        items.push(structuredClone(request));
      }
      return index >= 0 ? { items, next: String(index) } : { items };
    },

    async due(now, limit) {
      assertOpen();
      const ids: { id: string; at: number }[] = [];
      for (const request of requests.values()) {
        if (isLive(request.status) && request.expiresAt <= now) {
          ids.push({ id: request.id, at: request.expiresAt });
        }
      }
      return ids
        .sort((a, b) => a.at - b.at)
        .slice(0, limit)
        .map((d) => d.id);
    },

    async escalationsDue(now, limit) {
      assertOpen();
      const ids: { id: string; at: number }[] = [];
      for (const request of requests.values()) {
        const at = escalationDueAt(request);
        if (at !== undefined && at <= now) ids.push({ id: request.id, at });
      }
      return ids
        .sort((a, b) => a.at - b.at)
        .slice(0, limit)
        .map((d) => d.id);
    },

    async reindex() {
      assertOpen();
      // The indexes are computed from the records on every read: nothing to put right.
      return false;
    },

    async events(query: EventQuery) {
      assertOpen();
      // Events about writ itself belong to no request, not to one whose id is "".
      if (query.requestId === NO_REQUEST) return [];
      const out: RecordedEvent[] = [];
      for (let i = indexAfter(query.after); i < stream.length; i++) {
        const e = stream[i] as RecordedEvent;
        if (query.requestId !== undefined && e.requestId !== query.requestId) continue;
        if (!matches(query, e)) continue;
        out.push(e);
        if (out.length >= query.limit) break;
      }
      return out;
    },

    async scanEvents(query: EventScanQuery): Promise<EventScan> {
      assertOpen();
      if (!Number.isSafeInteger(query.scanLimit) || query.scanLimit < 1) {
        throw new TypeError("scanLimit must be a positive integer");
      }
      const items: RecordedEvent[] = [];
      if (query.requestId === NO_REQUEST) return { items };
      let left = query.scanLimit;
      for (let i = indexAfter(query.after); i < stream.length; i++) {
        const e = stream[i] as RecordedEvent;
        // A request's read passes over that request's events only.
        if (query.requestId !== undefined && e.requestId !== query.requestId) continue;
        left--;
        if (matches(query, e)) {
          items.push(e);
          if (items.length >= query.limit) return { items, next: e.id };
        }
        // Stopped by the budget, not by the end: say how far the read got.
        if (left === 0) return { items, next: e.id };
      }
      return { items };
    },

    async recentEvents(query: RecentEventsQuery) {
      assertOpen();
      let end = stream.length;
      if (query.before !== undefined) {
        // Only an id as this store hands them out: anything else is no position.
        if (!/^[1-9]\d{0,15}$/.test(query.before)) return [];
        const first = stream.length === 0 ? 0 : Number((stream[0] as RecordedEvent).id);
        end = Math.min(stream.length, Math.max(0, Number(query.before) - first));
      }
      return stream.slice(Math.max(0, end - query.limit), end).reverse();
    },

    waitForChange(id, version, timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        const current = requests.get(id);
        if (closed || current === undefined || current.version !== version || signal?.aborted) {
          resolve();
          return;
        }
        const done = () => {
          clearTimeout(timer);
          changes.off(id, done);
          changes.off("close", done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        changes.on(id, done);
        changes.on("close", done);
        signal?.addEventListener("abort", done, { once: true });
      });
    },

    waitForEvents(after, timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        const newest = stream.length === 0 ? 0 : Number((stream.at(-1) as RecordedEvent).id);
        if (closed || signal?.aborted || newest > Number(after ?? 0)) {
          resolve();
          return;
        }
        const done = () => {
          clearTimeout(timer);
          changes.off(APPENDED, done);
          changes.off("close", done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        changes.on(APPENDED, done);
        changes.on("close", done);
        signal?.addEventListener("abort", done, { once: true });
      });
    },

    async nextEvents(after, { limit, timeoutMs, signal }) {
      const ready = await store.events({ limit, ...(after !== undefined ? { after } : {}) });
      if (ready.length > 0 || closed) return ready;
      await store.waitForEvents(after, timeoutMs, signal);
      return closed ? [] : store.events({ limit, ...(after !== undefined ? { after } : {}) });
    },

    async lastEventId() {
      assertOpen();
      return stream.at(-1)?.id;
    },

    async ready() {
      return !closed;
    },

    async close() {
      closed = true;
      changes.emit("close");
      changes.removeAllListeners();
    },
  };
  return store;
}
