import { WritError } from "../domain/errors.js";
import type { RecordedEvent } from "../domain/events.js";
import type { Clock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { RequestStore } from "../ports/store.js";
import { pause, systemTimer, type Timer } from "../ports/timer.js";
import { type DeliveryChannel, DeliveryError } from "./channel.js";

export interface RetryPolicy {
  /** The first wait after a failure, in ms; it doubles with each further failure. */
  readonly initialMs: number;
  /** The longest wait, in ms, including a receiver's Retry-After. */
  readonly maxMs: number;
}

export interface NotificationWorkerOptions {
  readonly channel: DeliveryChannel;
  readonly store: Pick<RequestStore, "events" | "waitForEvents" | "ready">;
  readonly state: NotificationState;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This process's id for the lease: one replica at a time runs each worker. */
  readonly holder: string;
  readonly retry: RetryPolicy;
  /** Events read per batch (default 100). */
  readonly batchSize?: number;
  /** Longest idle wait before re-reading the stream, in ms (default 5,000). */
  readonly idleWaitMs?: number;
  /**
   * Lease lifetime, in ms (default 30,000); renewed before every delivery
   * attempt and, while a delivery runs, every third of it.
   */
  readonly leaseMs?: number;
  /** Paces the waits before retries and the lease renewals meanwhile (default: real time). */
  readonly timer?: Timer;
  /**
   * A worker with no saved cursor (its first start) skips events older than
   * this, in ms (default 10 minutes), so that a new deployment does not replay
   * a long stream into a chat channel.
   */
  readonly firstStartWindowMs?: number;
  /**
   * Failures retrying cannot fix before the event is dropped (default 3); a
   * record the store answers for but cannot read is one of them.
   */
  readonly permanentAttempts?: number;
}

export interface NotificationWorker {
  /** The last event this worker finished with (delivered, skipped or dropped). */
  position(): string | undefined;
  /** Stops after the current attempt; an undelivered event stays for the next start. */
  stop(): Promise<void>;
}

/** Exponential backoff with jitter, never under the receiver's Retry-After, never over the cap. */
export function backoffMs(attempt: number, policy: RetryPolicy, retryAfterMs?: number): number {
  const exponential = policy.initialMs * 2 ** Math.min(attempt - 1, 30);
  const jittered = Math.min(policy.maxMs, exponential) * (0.5 + Math.random() / 2);
  return Math.min(policy.maxMs, Math.max(jittered, retryAfterMs ?? 0));
}

function isRetryable(error: unknown): boolean {
  if (error instanceof DeliveryError) return error.retryable;
  // writ's own store or log being briefly unavailable is worth waiting for, and
  // so is a conflict: another replica is recording the same thing right now.
  return (
    error instanceof WritError &&
    (error.code === "store_unavailable" ||
      error.code === "audit_unavailable" ||
      error.code === "conflict")
  );
}

/**
 * Follows the store's event stream from a saved cursor and hands each event to
 * one channel, in order, retrying with backoff until it is delivered. It runs
 * beside the request flow and never inside it: a channel that is down or rate
 * limited delays only its own notifications, and they go out once it recovers.
 * The cursor is saved after each event, so a restart resumes where it stopped;
 * delivery is at least once.
 */
export function startNotificationWorker(options: NotificationWorkerOptions): NotificationWorker {
  const { channel, store, state, clock, logger, holder, retry } = options;
  const batchSize = options.batchSize ?? 100;
  const idleWaitMs = options.idleWaitMs ?? 5_000;
  const leaseMs = options.leaseMs ?? 30_000;
  const firstStartWindowMs = options.firstStartWindowMs ?? 10 * 60_000;
  const permanentAttempts = options.permanentAttempts ?? 3;
  const timer = options.timer ?? systemTimer;
  const stop = new AbortController();
  const name = `notify:${channel.name}`;
  const formerName = channel.formerName === undefined ? undefined : `notify:${channel.formerName}`;
  let cursor: string | undefined;
  let held = false;
  // Set on the first start only: events before it are not worth sending.
  let skipBefore: number | undefined;

  /** Takes or renews the lease; reloads the cursor when it was someone else's. */
  async function holdLease(): Promise<boolean> {
    const ok = await state.lease(name, holder, leaseMs);
    if (ok && !held) {
      cursor = await state.cursor(name);
      if (cursor === undefined && formerName !== undefined) {
        cursor = await state.cursor(formerName);
        if (cursor !== undefined) {
          await state.saveCursor(name, cursor);
          logger.info("notification worker resumed from the position kept under its former name", {
            channel: channel.name,
          });
        }
      }
      skipBefore = cursor === undefined ? clock.now() - firstStartWindowMs : undefined;
    }
    held = ok;
    return ok;
  }

  /**
   * Renews the lease every third of its lifetime until `done` aborts, so that a
   * delivery slower than the lease (many DMs, a slow receiver) keeps it and no
   * other replica delivers the same event meanwhile. When a renewal fails,
   * another replica may hold the lease by now: `lost` aborts, and the delivery
   * stops before its next outside call.
   */
  async function keepLease(lost: AbortController, done: AbortSignal): Promise<void> {
    for (;;) {
      try {
        await timer.sleep(leaseMs / 3, done);
      } catch {
        return;
      }
      if (done.aborted) return;
      let renewed = false;
      try {
        renewed = await state.lease(name, holder, leaseMs);
      } catch (error) {
        // Unknown is not enough: the lease may lapse before the next renewal.
        logger.warn("notification worker could not renew its lease", {
          channel: channel.name,
          error: (error as Error).message,
        });
      }
      if (done.aborted) return;
      if (!renewed) {
        held = false;
        lost.abort(new Error("the notification worker lost its lease"));
        return;
      }
    }
  }

  /**
   * One delivery attempt, with the lease kept for as long as it runs: "lost"
   * when the lease was lost meanwhile (the new holder delivers the event), or
   * the failure.
   */
  async function attemptDelivery(
    event: RecordedEvent,
  ): Promise<
    { outcome: "delivered" } | { outcome: "lost" } | { outcome: "failed"; error: unknown }
  > {
    const lost = new AbortController();
    const done = new AbortController();
    const heartbeat = keepLease(lost, done.signal);
    try {
      await channel.deliver(event, lost.signal);
      return lost.signal.aborted ? { outcome: "lost" } : { outcome: "delivered" };
    } catch (error) {
      return lost.signal.aborted ? { outcome: "lost" } : { outcome: "failed", error };
    } finally {
      done.abort();
      await heartbeat;
    }
  }

  /**
   * Whether a failure is worth retrying. The store answers `store_unavailable`
   * both when Redis is out of reach and when it holds a record writ cannot
   * read; while it answers otherwise, the record is the cause, and retrying
   * would hold every later notification of this channel behind it for good.
   */
  async function worthRetrying(error: unknown): Promise<boolean> {
    if (!isRetryable(error)) return false;
    if (!(error instanceof WritError) || error.code !== "store_unavailable") return true;
    return !(await store.ready().catch(() => false));
  }

  /** Delivers one event; false if the worker stopped or lost its lease first. */
  async function deliver(event: RecordedEvent): Promise<boolean> {
    let permanentFailures = 0;
    for (let attempt = 1; ; attempt++) {
      if (stop.signal.aborted || !(await holdLease())) return false;
      const result = await attemptDelivery(event);
      if (result.outcome === "lost") {
        logger.warn("notification worker lost its lease during a delivery; stopped it", {
          channel: channel.name,
          event_id: event.id,
          request_id: event.requestId,
        });
        return false;
      }
      if (result.outcome === "delivered") return true;
      const { error } = result;
      const retryable = await worthRetrying(error);
      if (!retryable) permanentFailures++;
      const fields = {
        channel: channel.name,
        event_id: event.id,
        event_type: event.type,
        request_id: event.requestId,
        attempt,
        error: (error as Error).message,
      };
      if (permanentFailures >= permanentAttempts) {
        logger.error("notification dropped after repeated failures", fields);
        return true;
      }
      const waitMs = backoffMs(
        attempt,
        retry,
        error instanceof DeliveryError ? error.retryAfterMs : undefined,
      );
      logger.warn("notification failed; retrying", {
        ...fields,
        retry_in_ms: Math.round(waitMs),
      });
      await waitHoldingLease(waitMs);
    }
  }

  /**
   * Waits before the next attempt with the lease kept, so that no other
   * replica calls the receiver sooner than it asked (a Retry-After, or the
   * backoff, outlasting the lease) nor starts the backoff over. A lost lease
   * ends the wait; the next attempt then finds it lost.
   */
  async function waitHoldingLease(waitMs: number): Promise<void> {
    const lost = new AbortController();
    const done = new AbortController();
    const heartbeat = keepLease(lost, done.signal);
    try {
      await timer.sleep(waitMs, AbortSignal.any([stop.signal, lost.signal])).catch(() => undefined);
    } finally {
      done.abort();
      await heartbeat;
    }
  }

  async function advance(event: RecordedEvent): Promise<void> {
    cursor = event.id;
    await state.saveCursor(name, event.id);
    if (formerName !== undefined) await state.saveCursor(formerName, event.id);
  }

  async function drain(): Promise<void> {
    for (;;) {
      if (stop.signal.aborted || !(await holdLease())) return;
      const batch = await store.events({
        limit: batchSize,
        ...(cursor !== undefined ? { after: cursor } : {}),
      });
      for (const event of batch) {
        const stale = skipBefore !== undefined && event.time < skipBefore;
        if (!stale && channel.wants(event) && !(await deliver(event))) return;
        await advance(event);
      }
      if (batch.length < batchSize) return;
    }
  }

  const loop = (async () => {
    let failures = 0;
    while (!stop.signal.aborted) {
      try {
        await drain();
        failures = 0;
      } catch (error) {
        // The store or the state is unreachable: wait, then read again from the cursor.
        failures++;
        logger.warn("notification worker could not read the stream", {
          channel: channel.name,
          error: (error as Error).message,
        });
        await pause(backoffMs(failures, retry), stop.signal);
        continue;
      }
      if (!held) {
        await pause(leaseMs / 3, stop.signal);
        continue;
      }
      // An internal follower: the store never refuses it for capacity. Any other
      // refusal waits before the next read, so the loop never spins.
      await store
        .waitForEvents(cursor, idleWaitMs, stop.signal, { internal: true })
        .catch(async () => {
          await pause(backoffMs(1, retry), stop.signal);
        });
    }
  })();

  return {
    position: () => cursor,
    async stop() {
      stop.abort();
      await loop;
    },
  };
}
