import type { Clock } from "../../ports/clock.js";
import type { DeniedSession, DeniedSessionLedger } from "../../ports/denied-sessions.js";
import type { Logger } from "../../ports/logger.js";
import type { Timer } from "../../ports/timer.js";
import { sessionMayBeLive } from "./revocation-policy.js";

/**
 * When a denied grant is checked again after its deny was written: after a
 * few seconds (a concurrent writer's stale write has landed by then), after
 * half a minute more (IAM's reads have usually settled), then every two
 * minutes, the last delay repeating, until the grant's session ends.
 */
export const REVOCATION_RECHECK_DELAYS_MS: readonly number[] = [5_000, 30_000, 120_000];

export interface RevocationRecheckOptions {
  readonly clock: Clock;
  readonly timer: Timer;
  readonly logger: Logger;
  /**
   * Makes sure the role's policy denies every one of `sessions`, writing again
   * what is missing; resolves with the grants it had to write again.
   */
  readonly recheck: (roleName: string, sessions: readonly DeniedSession[]) => Promise<string[]>;
  /**
   * The denies every writ process on the store shares, when there are other
   * processes: each one then also takes up, every few minutes, the sessions in
   * it that it does not yet watch, so a deny is still checked after the
   * process that wrote it has stopped.
   */
  readonly shared?: DeniedSessionLedger;
}

export interface RevocationRecheck {
  /** Watches `session`'s deny on `roleName` until the session ends. */
  watch(roleName: string, session: DeniedSession): void;
  /** Stops every watch (at shutdown); later `watch` calls are ignored. */
  close(): void;
}

interface Watch {
  readonly session: DeniedSession;
  step: number;
  dueAt: number;
}

interface RoleWatches {
  readonly watches: Map<string, Watch>;
  /** Wakes the role's loop early when a sooner check is added. */
  wake: AbortController | undefined;
}

/**
 * Checks, in the background, that the denies this process wrote (and, with a
 * shared ledger, those every writ process wrote) are still in the role's
 * policy, and writes back any that went missing. IAM has no
 * conditional write and its reads are eventually consistent, so a concurrent
 * writer (another replica whose lock lapsed, or whose read had not yet seen
 * this write) can replace the policy with one that lacks a deny writ already
 * recorded. One loop per role checks all of that role's watched grants in one
 * read. Due times are on the injected clock; the timer only wakes the loop.
 */
export function createRevocationRecheck(options: RevocationRecheckOptions): RevocationRecheck {
  const { clock, timer, logger, recheck } = options;
  const roles = new Map<string, RoleWatches>();
  const stopping = new AbortController();

  const delayAt = (step: number) =>
    REVOCATION_RECHECK_DELAYS_MS[Math.min(step, REVOCATION_RECHECK_DELAYS_MS.length - 1)] ?? 0;

  function live(roleName: string, role: RoleWatches, now: number): Watch[] {
    for (const [grant, watch] of role.watches) {
      // The same allowance as pruning: AWS's clock may run behind writ's.
      if (!sessionMayBeLive(watch.session.endsAt, now)) role.watches.delete(grant);
    }
    if (role.watches.size === 0 && roles.get(roleName) === role) roles.delete(roleName);
    return [...role.watches.values()];
  }

  async function pause(ms: number, role: RoleWatches): Promise<void> {
    const wake = new AbortController();
    role.wake = wake;
    try {
      await timer.sleep(Math.max(0, ms), AbortSignal.any([stopping.signal, wake.signal]));
    } catch {
      // Woken early or stopping: the loop decides which.
    } finally {
      if (role.wake === wake) role.wake = undefined;
    }
  }

  async function run(roleName: string, role: RoleWatches): Promise<void> {
    while (!stopping.signal.aborted) {
      const now = clock.now();
      const watches = live(roleName, role, now);
      if (watches.length === 0) return;
      const nextDue = Math.min(...watches.map((w) => w.dueAt));
      if (nextDue > now) {
        await pause(nextDue - now, role);
        continue;
      }
      let rewritten: string[] = [];
      try {
        rewritten = await recheck(
          roleName,
          watches.map((w) => w.session),
        );
        if (rewritten.length > 0) {
          logger.warn("AWS revocation was missing from the role's policy; written again", {
            role: roleName,
            grants: rewritten,
          });
        }
      } catch (error) {
        // Tried again at the next due time; the failure itself was logged where it happened.
        logger.warn("AWS revocation re-check failed; trying again later", {
          role: roleName,
          error: (error as { code?: unknown }).code ?? "unknown",
        });
      }
      const after = clock.now();
      for (const watch of role.watches.values()) {
        if (rewritten.length > 0) {
          // Something overwrote the policy: look again soon, from the start.
          watch.step = 0;
          watch.dueAt = after + delayAt(0);
        } else if (watch.dueAt <= now) {
          watch.step += 1;
          watch.dueAt = after + delayAt(watch.step);
        }
      }
    }
  }

  /** Adds a watch, first due at `dueAt` and then on the schedule from `step`. */
  function add(roleName: string, session: DeniedSession, step: number, dueAt: number): void {
    const existing = roles.get(roleName);
    if (existing !== undefined) {
      existing.watches.set(session.grant, { session, step, dueAt });
      existing.wake?.abort();
      return;
    }
    const role: RoleWatches = {
      watches: new Map([[session.grant, { session, step, dueAt }]]),
      wake: undefined,
    };
    roles.set(roleName, role);
    void run(roleName, role).catch((error: unknown) => {
      logger.error("AWS revocation re-check stopped", {
        role: roleName,
        error: (error as Error).name,
      });
    });
  }

  /**
   * Takes up the shared ledger's sessions this process does not watch yet
   * (written by another process, which may since have stopped): each is
   * checked at once, then every few minutes like any deny past its first checks.
   */
  async function adopt(ledger: DeniedSessionLedger): Promise<void> {
    const now = clock.now();
    for (const roleName of await ledger.scopes(now)) {
      for (const session of await ledger.live(roleName, now)) {
        if (stopping.signal.aborted) return;
        if (roles.get(roleName)?.watches.has(session.grant) === true) continue;
        add(roleName, session, REVOCATION_RECHECK_DELAYS_MS.length - 1, now);
      }
    }
  }

  async function sweep(ledger: DeniedSessionLedger): Promise<void> {
    // Soon after start, then at the slowest re-check's pace.
    let wait = REVOCATION_RECHECK_DELAYS_MS[0] ?? 0;
    while (!stopping.signal.aborted) {
      try {
        await timer.sleep(wait, stopping.signal);
      } catch {
        return;
      }
      wait = REVOCATION_RECHECK_DELAYS_MS.at(-1) ?? wait;
      try {
        await adopt(ledger);
      } catch (error) {
        logger.warn("AWS revocation ledger could not be read; trying again later", {
          error: (error as { code?: unknown }).code ?? "unknown",
        });
      }
    }
  }

  if (options.shared !== undefined) {
    void sweep(options.shared).catch((error: unknown) => {
      logger.error("AWS revocation sweep stopped", { error: (error as Error).name });
    });
  }

  return {
    watch(roleName, session) {
      if (stopping.signal.aborted) return;
      add(roleName, session, 0, clock.now() + delayAt(0));
    },
    close() {
      stopping.abort();
      roles.clear();
    },
  };
}
