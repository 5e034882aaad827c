import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import {
  createRedisNotificationState,
  type RedisEvalClient,
} from "../../src/adapters/notification-state-redis.js";
import { createRedisStore } from "../../src/adapters/redis-store.js";
import type { DomainEvent, RecordedEvent } from "../../src/domain/events.js";
import { type DeliveryChannel, DeliveryError } from "../../src/notify/channel.js";
import { backoffMs, startNotificationWorker } from "../../src/notify/worker.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { NotificationState } from "../../src/ports/notification-state.js";
import type { RequestStore } from "../../src/ports/store.js";
import type { Timer } from "../../src/ports/timer.js";
import { CUSTOMERS_EXPORT, createRequest } from "../support/api.js";
import { capturingLogger } from "../support/captured-log.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import { type RecordingServer, startRecordingServer } from "../support/recording-server.js";
import { redisWithPlainClientPerSuite } from "../support/redis.js";

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

describe("a notification worker told to wait", () => {
  it("keeps its lease while it waits out a Retry-After longer than the lease, so no other replica calls sooner", async () => {
    const clock = new ManualClock();
    const timer = manualTimer(clock);
    const store = createMemoryStore();
    const { state, leases } = observedLeases(createMemoryNotificationState({ clock }));
    const start = clock.now();
    const calls: { holder: string; atSeconds: number }[] = [];
    const channel = (holder: string): DeliveryChannel => ({
      name: "slack",
      wants: (e) => e.type === "request.decided",
      async deliver() {
        calls.push({ holder, atSeconds: (clock.now() - start) / 1000 });
        if (calls.length === 1) {
          throw new DeliveryError("Slack rate-limited the call", {
            retryable: true,
            retryAfterMs: 120_000,
          });
        }
      },
    });
    const startWorker = (holder: string) =>
      startNotificationWorker({
        channel: channel(holder),
        store,
        state,
        clock,
        timer: timer.timer,
        logger,
        holder,
        retry: { initialMs: 1_000, maxMs: 300_000 },
        idleWaitMs: 50,
      });
    await store.append([event("request.decided", clock.now())]);
    const a = startWorker("replica-a");
    await expect.poll(() => calls.length).toBe(1);
    // Past the 30 s lease, well within the 120 s Slack asked for.
    await timer.advance(31);
    const b = startWorker("replica-b");
    await expect.poll(() => leases.some((l) => l.holder === "replica-b")).toBe(true);
    await timer.advance(90);
    await expect.poll(() => state.cursor("notify:slack")).toBe("1");
    await Promise.all([a.stop(), b.stop()]);
    expect(calls).toEqual([
      { holder: "replica-a", atSeconds: 0 },
      { holder: "replica-a", atSeconds: 120 },
    ]);
    expect(leases.filter((l) => l.holder === "replica-b").map((l) => l.ok)).toEqual([false]);
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

describe("a notification worker on Redis, past an event whose request cannot be read", () => {
  const redis = redisWithPlainClientPerSuite();
  let receiver: RecordingServer;
  let dir: string;
  let t: TestWrit | undefined;

  beforeAll(async () => {
    receiver = await startRecordingServer();
    dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
    await writeFile(join(dir, "secret"), "9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b3c", {
      mode: 0o600,
    });
  });

  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("drops that event after three tries, logged with its request, and delivers the ones after it", async () => {
    const prefix = `poison${randomBytes(6).toString("hex")}`;
    const { logger, lines } = capturingLogger();
    t = await startTestWrit(
      {
        webhooks: [{ url: `${receiver.url}/hook`, secret_file: join(dir, "secret") }],
        notifications: { retry: { initial_ms: 2, max_ms: 20 } },
      },
      {
        store: createRedisStore({ client: redis.client, prefix, logger: silentLogger }),
        notificationState: createRedisNotificationState({
          client: redis.client as unknown as RedisEvalClient,
          prefix: `{${prefix}}`,
        }),
        logger,
      },
    );
    const delivered = (id: string, type: string) =>
      receiver.waitFor((r) => {
        const body = JSON.parse(r.body) as { type: string; request_id: string };
        return body.request_id === id && body.type === type;
      });
    const first = await createRequest(t, CUSTOMERS_EXPORT);
    await delivered(first.id, "request.decided");
    // Its record turns into one this replica cannot read (a hand edit gone
    // wrong), and then an event about it is recorded.
    await redis.raw.hSet(`{${prefix}}:req:${first.id}`, "d", "{not json");
    await t.writ.broker.deps.store.append([
      {
        type: "approval.form_opened",
        requestId: first.id,
        actor: { kind: "system", id: "writ" },
        time: t.clock.now(),
        data: {},
      },
    ]);
    const second = await createRequest(t, CUSTOMERS_EXPORT);

    await delivered(second.id, "request.decided");
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        message: "notification dropped after repeated failures",
        fields: expect.objectContaining({ request_id: first.id, attempt: 3 }),
      }),
    );
  });
});
