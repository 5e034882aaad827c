/**
 * What notification workers and chat integrations remember between events and
 * across restarts: where each worker stopped in the event stream, what each
 * channel posted for a request (e.g. Slack message ids, so later events update
 * the same message), which inbound payloads were already seen (replay and retry
 * protection), and which replica runs each worker. Implementations: memory
 * (dev, tests) and Redis (shared by replicas, so a message posted by one replica
 * is updated by another).
 */
export interface NotificationState {
  /** The id of the last event worker `worker` finished with, or undefined before its first. */
  cursor(worker: string): Promise<string | undefined>;
  saveCursor(worker: string, eventId: string): Promise<void>;
  /** Facts `scope` (a channel) keeps about one request; empty when none. */
  facts(scope: string, requestId: string): Promise<Readonly<Record<string, string>>>;
  /** Merges `facts` into what `scope` keeps about the request. Kept about 30 days. */
  saveFacts(
    scope: string,
    requestId: string,
    facts: Readonly<Record<string, string>>,
  ): Promise<void>;
  /**
   * Records `key` for `ttlMs`: true the first time, false while it is
   * remembered. Atomic, so of two replicas seeing the same payload only one wins.
   */
  firstSeen(key: string, ttlMs: number): Promise<boolean>;
  /**
   * Takes, or renews, the lease on `name` for `holder` for `ttlMs`: true when
   * `holder` has it, false while another holder does. One replica at a time
   * runs each worker (renewing its lease while a delivery runs), and records
   * each `notification.sent`; a crashed holder's lease lapses after `ttlMs`.
   * Atomic, so two replicas never both hold it.
   */
  lease(name: string, holder: string, ttlMs: number): Promise<boolean>;
}
