import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import type { DomainEvent, RecordedEvent } from "../../src/domain/events.js";
import { type DeliveryChannel, DeliveryError } from "../../src/notify/channel.js";
import { backoffMs, startNotificationWorker } from "../../src/notify/worker.js";
import type { NotificationState } from "../../src/ports/notification-state.js";
import type { RequestStore } from "../../src/ports/store.js";
import type { Timer } from "../../src/ports/timer.js";
import { capturingLogger } from "../support/captured-log.js";
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

const { logger, lines: logs } = capturingLogger();

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

/** `holder`'s worker waiting on `timer`, with the default lease (30 s): for the lease's tests. */
function leasedWorker(
  store: RequestStore,
  state: NotificationState,
  clock: ManualClock,
  timer: Timer,
  channel: DeliveryChannel,
  holder: string,
) {
  return startNotificationWorker({
    channel,
    store,
    state,
    clock,
    timer,
    logger,
    holder,
    retry: { initialMs: 1, maxMs: 10 },
    idleWaitMs: 50,
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

  it("keeps its lease while a delivery outlasts it, so no second replica delivers the same event meanwhile", async () => {
    const clock = new ManualClock();
    const timer = manualTimer(clock);
    const store = createMemoryStore();
    const { state, leases } = observedLeases(createMemoryNotificationState({ clock }));
    const slow = gate();
    let inFlight = 0;
    let maxInFlight = 0;
    const deliveredBy: string[] = [];
    const channel = (holder: string): DeliveryChannel => ({
      name: "slack",
      wants: (e) => e.type === "request.decided",
      async deliver() {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // One slow Slack call after another, each within the client's timeout.
        await slow.opened;
        deliveredBy.push(holder);
        inFlight--;
      },
    });
    const start = (holder: string) =>
      leasedWorker(store, state, clock, timer.timer, channel(holder), holder);
    await store.append([event("request.decided", clock.now())]);
    const a = start("replica-a");
    await expect.poll(() => inFlight).toBe(1);
    // The delivery runs 40 s: longer than the lease, renewed every 10 s meanwhile.
    await timer.advance(40);
    const b = start("replica-b");
    await expect.poll(() => leases.some((l) => l.holder === "replica-b")).toBe(true);
    expect(leases.filter((l) => l.holder === "replica-b").map((l) => l.ok)).toEqual([false]);
    expect(leases.filter((l) => l.holder === "replica-a").length).toBeGreaterThanOrEqual(5);
    slow.open();
    await expect.poll(() => state.cursor("notify:slack")).toBe("1");
    await Promise.all([a.stop(), b.stop()]);
    expect(maxInFlight).toBe(1);
    expect(deliveredBy).toEqual(["replica-a"]);
  });

  it("stops a delivery at its next step once the lease is lost, and the new holder delivers the event", async () => {
    const clock = new ManualClock();
    const timer = manualTimer(clock);
    const store = createMemoryStore();
    const state = createMemoryNotificationState({ clock });
    const stalled = gate();
    const calls: string[] = [];
    const channel = (holder: string): DeliveryChannel => ({
      name: "slack",
      wants: (e) => e.type === "request.decided",
      async deliver(_event, signal) {
        calls.push(`${holder}: first DM`);
        if (holder === "replica-a") await stalled.opened;
        // As the Slack notifier does between its calls.
        signal.throwIfAborted();
        calls.push(`${holder}: second DM`);
      },
    });
    const start = (holder: string) =>
      leasedWorker(store, state, clock, timer.timer, channel(holder), holder);
    await store.append([event("request.decided", clock.now())]);
    const a = start("replica-a");
    await expect.poll(() => calls).toEqual(["replica-a: first DM"]);
    // replica-a stalls past its lease without renewing it (a long pause of the
    // process); replica-b takes the lease over and delivers the event.
    clock.advance(31);
    const b = start("replica-b");
    await expect.poll(() => state.cursor("notify:slack")).toBe("1");
    // replica-a wakes: its renewal is refused, and its delivery stops there.
    await timer.advance(0);
    stalled.open();
    await expect
      .poll(() => logs.some((l) => l.message.includes("lost its lease during a delivery")))
      .toBe(true);
    await Promise.all([a.stop(), b.stop()]);
    expect(calls).toEqual(["replica-a: first DM", "replica-b: first DM", "replica-b: second DM"]);
    expect(await state.cursor("notify:slack")).toBe("1");
  });
});

/** A promise the test opens when it chooses. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** The state, recording each lease call and its answer. */
function observedLeases(state: NotificationState) {
  const leases: { holder: string; ok: boolean }[] = [];
  const observed: NotificationState = {
    ...state,
    async lease(name, holder, ttlMs) {
      const ok = await state.lease(name, holder, ttlMs);
      leases.push({ holder, ok });
      return ok;
    },
  };
  return { state: observed, leases };
}

/** A timer on the manual clock: a wait ends when the test moves the clock past it. */
function manualTimer(clock: ManualClock) {
  const waits = new Set<{ until: number; resolve: () => void }>();
  const timer: Timer = {
    sleep(ms, signal) {
      return new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const wait = { until: clock.now() + ms, resolve };
        waits.add(wait);
        signal?.addEventListener(
          "abort",
          () => {
            waits.delete(wait);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    },
  };
  /** Ends the waits due by now, and lets what they started run. */
  async function due() {
    for (const wait of [...waits]) {
      if (wait.until > clock.now()) continue;
      waits.delete(wait);
      wait.resolve();
    }
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }
  return {
    timer,
    /** Moves the clock by `seconds`, one second at a time, ending the waits due at each. */
    async advance(seconds: number) {
      await due();
      for (let i = 0; i < seconds; i++) {
        clock.advance(1);
        await due();
      }
    },
  };
}
