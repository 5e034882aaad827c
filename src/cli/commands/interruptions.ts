import { constants } from "node:os";

/** The signals that ask writ to stop: Ctrl-C, `kill`, a closed terminal. */
const STOPPING_SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * How long writ still spends, once asked to stop, withdrawing or completing
 * the request it made: long enough for one call, short enough for a
 * supervisor's grace period (`docker stop` waits 10 s).
 */
export const CLEANUP_DEADLINE_MS = 5_000;

/** The shell's exit code for a process ended by `signal`: 128 + its number. */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * The stopping signals writ received while it held a request. They do not end
 * writ at once: it first withdraws the request or reports it complete, so that
 * reviewers are not left approving something nobody collects and a credential
 * does not outlive the work.
 */
export interface Interruptions {
  /** Aborts at the first stopping signal (not one passed on to a command). */
  readonly signal: AbortSignal;
  /** Aborts {@link CLEANUP_DEADLINE_MS} after the first stopping signal: the bound on cleanup calls. */
  readonly deadline: AbortSignal;
  /** The first stopping signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** While a command runs, every signal goes to it instead, and writ waits for it to exit. */
  forwardTo(target: ((signal: NodeJS.Signals) => void) | undefined): void;
  /** Gives the signals back their default action. */
  stop(): void;
}

/** Catches the stopping signals until `stop()`. */
export function catchInterruptions(): Interruptions {
  const first = new AbortController();
  const late = new AbortController();
  let received: NodeJS.Signals | undefined;
  let forward: ((signal: NodeJS.Signals) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (forward !== undefined) {
      forward(signal);
      return;
    }
    if (received !== undefined) return;
    received = signal;
    first.abort(new Error(`${signal} received`));
    // The calls this bounds keep the process alive; the timer need not.
    timer = setTimeout(() => late.abort(new Error("cleanup deadline passed")), CLEANUP_DEADLINE_MS);
    timer.unref();
  };
  for (const name of STOPPING_SIGNALS) process.on(name, onSignal);
  return {
    signal: first.signal,
    deadline: late.signal,
    get received() {
      return received;
    },
    forwardTo(target) {
      forward = target;
    },
    stop() {
      for (const name of STOPPING_SIGNALS) process.off(name, onSignal);
      clearTimeout(timer);
    },
  };
}
