/**
 * A lock held across every writ process that shares one store: the replicas of
 * a deployment and the workers of one `writ serve`. It orders changes to things
 * outside writ that offer no compare-and-swap of their own, such as an IAM
 * role's inline policy. The memory store is one process, so it needs none.
 *
 * The lock is leased: it lapses after its lease even while `work` still runs,
 * so that a holder that crashed never blocks the others for good. It therefore
 * orders well-behaved holders; it cannot fence a holder that outlived its
 * lease, and whatever it protects must tolerate that rare case on its own.
 */
export interface SharedLock {
  /**
   * Runs `work` while holding the lock `name`, after waiting a bounded time for
   * another holder to finish, and releases it only if it is still this
   * holder's. Rejects with a `conflict` error when the lock stays taken, or
   * `store_unavailable` when the store cannot be reached; `work` has not run
   * then.
   */
  withLock<T>(name: string, work: () => Promise<T>): Promise<T>;
}
