import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import type { DomainEvent, RecordedEvent } from "../../src/domain/events.js";
import { type DeliveryChannel, DeliveryError } from "../../src/notify/channel.js";
import { backoffMs, startNotificationWorker } from "../../src/notify/worker.js";
import type { Logger } from "../../src/ports/logger.js";
import type { NotificationState } from "../../src/ports/notification-state.js";
import type { RequestStore } from "../../src/ports/store.js";
import { ManualClock } from "../support/harness.js";

/** A destination that records deliveries and fails as told. */
function recordingChannel(
  fail: (event: RecordedEvent, attempt: number) => Error | undefined = () => undefined,
) {
  const delivered: string[] = [];
  const attempts = new Map<string, number>();
  const waiters: { count: number; resolve: () => void }[] = [];
  const channel: DeliveryChannel = {
    name: "test",
    wants: (event) => event.type !== "request.decided",
    async deliver(event) {
      const attempt = (attempts.get(event.id) ?? 0) + 1;
      attempts.set(event.id, attempt);
      const error = fail(event, attempt);
      if (error !== undefined) throw error;
      delivered.push(event.id);
      for (const w of waiters.filter((w) => delivered.length >= w.count)) w.resolve();
    },
  };
  return {
    channel,
    delivered,
    attempts,
    /** Resolves once `count` events were delivered, failing after a bounded wait. */
    until(count: number, timeoutMs = 5000): Promise<void> {
      if (delivered.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${delivered.length} delivered`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

function event(type: DomainEvent["type"], time: number): DomainEvent {
  return {
    type,
    requestId: "req_AAAAAAAAAAAAAAAAAAAAAA",
    actor: { kind: "system", id: "writ" },
    time,
    data: {},
  };
}

const logs: { level: string; message: string }[] = [];
const logger: Logger = {
  info: (message) => logs.push({ level: "info", message }),
  warn: (message) => logs.push({ level: "warn", message }),
  error: (message) => logs.push({ level: "error", message }),
};

function worker(
  store: RequestStore,
  state: NotificationState,
  clock: ManualClock,
  channel: DeliveryChannel,
  holder = "a",
) {
  return startNotificationWorker({
    channel,
    store,
    state,
    clock,
    logger,
    holder,
    retry: { initialMs: 1, maxMs: 10 },
    idleWaitMs: 50,
    leaseMs: 60_000,
  });
}

describe("notification worker", () => {
  it("delivers in order and resumes after a restart from its saved cursor", async () => {
    const clock = new ManualClock();
    const store = createMemoryStore();
    const state = createMemoryNotificationState({ clock });
    const rec = recordingChannel();
    const first = worker(store, state, clock, rec.channel);
    await store.append([
      event("request.created", clock.now()),
      event("request.decided", clock.now()),
    ]);
    await store.append([event("approval.granted", clock.now())]);
    await rec.until(2);
    await first.stop();
    expect(rec.delivered).toEqual(["1", "3"]);
    expect(await state.cursor("notify:test")).toBe("3");

    await store.append([event("request.approved", clock.now())]);
    const second = worker(store, state, clock, rec.channel);
    await rec.until(3);
    await second.stop();
    expect(rec.delivered).toEqual(["1", "3", "4"]);
  });

  it("on its very first start skips events older than the start window", async () => {
    const clock = new ManualClock();
    const store = createMemoryStore();
    const state = createMemoryNotificationState({ clock });
    await store.append([event("request.created", clock.now() - 3600_000)]);
    await store.append([event("request.created", clock.now() - 60_000)]);
    const rec = recordingChannel();
    const w = worker(store, state, clock, rec.channel);
    await rec.until(1);
    await w.stop();
    expect(rec.delivered).toEqual(["2"]);
  });

  it("retries retryable failures until delivered, and drops permanent ones after three tries", async () => {
    const clock = new ManualClock();
    const store = createMemoryStore();
    const state = createMemoryNotificationState({ clock });
    const rec = recordingChannel((e, attempt) => {
      if (e.id === "1" && attempt <= 4)
        return new DeliveryError("rate limited", { retryable: true, retryAfterMs: 5 });
      if (e.id === "2") return new DeliveryError("channel_not_found", { retryable: false });
      return undefined;
    });
    const w = worker(store, state, clock, rec.channel);
    await store.append([
      event("request.created", clock.now()),
      event("approval.granted", clock.now()),
    ]);
    await store.append([event("request.approved", clock.now())]);
    await rec.until(2);
    await w.stop();
    expect(rec.delivered).toEqual(["1", "3"]);
    expect(rec.attempts.get("1")).toBe(5);
    expect(rec.attempts.get("2")).toBe(3);
    expect(logs.some((l) => l.level === "error" && l.message.includes("dropped"))).toBe(true);
  });

  it("runs one worker per channel across replicas sharing the state", async () => {
    const clock = new ManualClock();
    const store = createMemoryStore();
    const state = createMemoryNotificationState({ clock });
    const rec = recordingChannel();
    const a = worker(store, state, clock, rec.channel, "replica-a");
    const b = worker(store, state, clock, rec.channel, "replica-b");
    for (let i = 0; i < 20; i++) await store.append([event("approval.granted", clock.now())]);
    await rec.until(20);
    await Promise.all([a.stop(), b.stop()]);
    expect(rec.delivered).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
  });

  it("backs off exponentially within the cap and honours Retry-After", () => {
    const policy = { initialMs: 100, maxMs: 1000 };
    for (let i = 0; i < 20; i++) {
      const first = backoffMs(1, policy);
      expect(first).toBeGreaterThanOrEqual(50);
      expect(first).toBeLessThanOrEqual(100);
      expect(backoffMs(10, policy)).toBeLessThanOrEqual(1000);
      expect(backoffMs(1, policy, 700)).toBe(700);
      expect(backoffMs(1, policy, 60_000)).toBe(1000);
    }
  });
});
