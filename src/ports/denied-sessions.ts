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
   * `retainUntil` (ms). Resolves true when this call put it on record, false
   * when it was on record already (another end of the same session).
   */
  add(scope: string, session: DeniedSession, retainUntil: number, now: number): Promise<boolean>;
  /**
   * Forgets `session` in `scope`: its deny could not be written, and the caller
   * was told the session lives on, so no later write may end it unrecorded.
   * Only the caller whose `add` put it on record removes it.
   */
  remove(scope: string, session: DeniedSession): Promise<void>;
  /** The sessions of `scope` still retained at `now`. */
  live(scope: string, now: number): Promise<DeniedSession[]>;
  /** The scopes with sessions still retained at `now`. */
  scopes(now: number): Promise<string[]>;
}
