/** A session writ set out to deny at its source, until the session ends by itself. */
export interface DeniedSession {
  /** The id the source's deny names (an AWS session's `writ-grant` tag). */
  readonly grant: string;
  /** When the session was issued (ms): a time-based deny covers it if later. */
  readonly issuedAt: number;
  /** When the session ends at its source (ms); after that there is nothing left to deny. */
  readonly endsAt: number;
}

/**
 * The sessions writ has set out to deny, by scope (an AWS role), kept where
 * every writ process sharing a store sees them. A source such as IAM has no
 * conditional write, so a concurrent writer can erase a deny that was already
 * recorded; with this ledger any process, not only the one that wrote the
 * deny, can find it missing and write it back, for as long as the session
 * lives. Entries leave by themselves once their session has ended.
 */
export interface DeniedSessionLedger {
  /** Whether every writ process on the same store shares this ledger (false: this process only). */
  readonly shared: boolean;
  /**
   * Records at `now` that `session` must stay denied in `scope` until
   * `retainUntil` (ms), and resolves with this caller's claim on the entry.
   * Every end of the same session (a complete, a revoke, the expiry) that
   * records it holds a claim of its own.
   */
  add(scope: string, session: DeniedSession, retainUntil: number, now: number): Promise<string>;
  /**
   * Withdraws `claim`, this caller's own, from `session`'s entry in `scope`:
   * its deny could not be written, and the caller was told the session lives
   * on. The entry is forgotten only once no claim on it is left, so another
   * end of the same session, whose write may have carried the deny, keeps it.
   */
  withdraw(scope: string, session: DeniedSession, claim: string): Promise<void>;
  /** The sessions of `scope` still retained at `now`. */
  live(scope: string, now: number): Promise<DeniedSession[]>;
  /** The scopes with sessions still retained at `now`. */
  scopes(now: number): Promise<string[]>;
}
