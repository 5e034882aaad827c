import { WritError } from "../domain/errors.js";
import type { DomainEvent, RecordedEvent } from "../domain/events.js";
import { unrecordableJson } from "../domain/json.js";
import type { AccessRequest, Transition } from "../domain/request.js";
import { expireIfDue } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";
import { revokeExpiredAtSource } from "./revoke-at-source.js";

/** Compare-and-swap retries before giving up; each retry re-reads fresh state. */
const MAX_ATTEMPTS = 50;

type Deps = Pick<
  BrokerDeps,
  | "store"
  | "auditLog"
  | "notifiers"
  | "logger"
  | "clock"
  | "revokers"
  | "timer"
  | "stopping"
  | "recent"
>;

/**
 * Refuses a state change up front when the audit log cannot take its record:
 * rule 3, no audit, no change. (A write that fails after the commit still
 * leaves the change recorded in the store's stream, and the caller gets a 503.)
 * The events must be recordable too: one the log could not write exactly
 * (a lone surrogate, a number past Infinity) would stop the log for every
 * later change once committed, so it is refused before the commit.
 */
export function assertAuditable(deps: Deps, events: readonly DomainEvent[]): void {
  if (!deps.auditLog.writable()) {
    throw new WritError(
      "audit_unavailable",
      "The audit log cannot record changes now; try again later.",
    );
  }
  for (const event of events) {
    const problem =
      unrecordableJson(event.requestId) ??
      unrecordableJson(event.actor.id) ??
      unrecordableJson(event.data);
    if (problem !== undefined) {
      throw new WritError(
        "validation_failed",
        `The change carries ${problem}, which the audit log cannot record.`,
      );
    }
  }
}

/**
 * Writes committed events to the audit log, durably, before the caller is
 * answered. The store already holds them; a failure here answers 503 so that
 * nothing (in particular no credential) leaves without its record on disk.
 */
export async function persist(deps: Deps, events: readonly RecordedEvent[]): Promise<void> {
  if (events.length === 0) return;
  try {
    await deps.auditLog.append(events);
  } catch (error) {
    deps.logger.error("audit log append failed", {
      error: (error as Error).message,
      first_event: events[0]?.id,
    });
    throw new WritError(
      "audit_unavailable",
      "The audit log could not record the change; try again.",
    );
  }
}

/** Tells notifiers about committed events. Never throws: notifications never block a request. */
export function announce(
  deps: Deps,
  request: AccessRequest,
  events: readonly RecordedEvent[],
): void {
  for (const notifier of deps.notifiers) {
    notifier.notify(request, events).catch((error: unknown) => {
      deps.logger.warn("notifier failed", {
        notifier: notifier.name,
        request_id: request.id,
        error: (error as Error).message,
      });
    });
  }
}

export async function appendEvents(
  deps: Deps,
  request: AccessRequest,
  events: readonly DomainEvent[],
) {
  assertAuditable(deps, events);
  const recorded = await deps.store.append(events);
  await persist(deps, recorded);
  announce(deps, request, recorded);
  return recorded;
}

async function load(deps: Deps, id: string): Promise<AccessRequest> {
  const request = await deps.store.get(id);
  if (request === undefined) throw new WritError("not_found", "No such request.");
  return request;
}

/**
 * Reads a request and applies its expiry if the deadline has passed, so that
 * every caller sees a settled state even before the background sweep runs.
 */
export async function loadSettled(deps: Deps, id: string): Promise<AccessRequest> {
  return (await settle(deps, id)).request;
}

/** {@link loadSettled}, saying whether this call recorded the expiry. */
export async function settle(
  deps: Deps,
  id: string,
): Promise<{ request: AccessRequest; expired: boolean }> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const request = await load(deps, id);
    const expiry = expireIfDue(request, deps.clock.now());
    if (expiry === undefined) return { request, expired: false };
    assertAuditable(deps, expiry.events);
    const result = await deps.store.commit(expiry.request, request.version, expiry.events);
    if (result.ok) {
      deps.recent?.remember(expiry.request);
      try {
        await persist(deps, result.events);
        announce(deps, expiry.request, result.events);
      } finally {
        // The expiry is committed whether or not the log confirmed it in time, and
        // no later read settles this request again: the credential is ended at its
        // source now or never.
        if (request.status === "issued") {
          const expired = expiry.request;
          void revokeExpiredAtSource(deps, expired, (events) =>
            appendEvents(deps, expired, events),
          );
        }
      }
      return { request: expiry.request, expired: true };
    }
  }
  throw new WritError("conflict", "The request is changing too fast; try again.");
}

/**
 * Applies `change` to the current state of a request and commits it with its
 * events in one atomic step, retrying on a concurrent change. `change` is pure
 * and runs again on every retry, so its checks always see the latest state. A
 * transition that keeps the version changes nothing and only records its events.
 */
export async function transact(
  deps: Deps,
  id: string,
  change: (current: AccessRequest, now: number) => Transition | Promise<Transition>,
): Promise<{ request: AccessRequest; events: readonly RecordedEvent[] }> {
  // The state this process last committed, if it is not due to expire: a guess
  // that only a successful compare-and-swap confirms (see RecentRequests).
  const remembered = deps.recent?.get(id);
  let known =
    remembered !== undefined && expireIfDue(remembered, deps.clock.now()) === undefined
      ? remembered
      : undefined;
  let guessed = known !== undefined;
  /** After deciding on a guess without a commit: the stored state, if the guess was stale. */
  const staleness = async (guess: AccessRequest) => {
    const stored = await loadSettled(deps, id);
    return stored.version === guess.version ? undefined : stored;
  };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const current = known ?? (await loadSettled(deps, id));
    const onGuess = guessed;
    known = undefined;
    guessed = false;
    let transition: Transition;
    try {
      transition = await change(current, deps.clock.now());
    } catch (error) {
      // A refusal stands only if the state it was decided on is the stored one;
      // otherwise decide again on the stored state. (A failure of a side effect,
      // such as minting, on an accurate guess is not repeated.)
      if (onGuess) known = await staleness(current);
      if (known !== undefined) continue;
      throw error;
    }
    if (transition.request.version === current.version) {
      // Nothing to compare-and-swap would confirm a guess: check it before recording.
      if (onGuess) known = await staleness(current);
      if (known !== undefined) continue;
      // Nothing changed and nothing to record (an idempotent repeat): a no-op.
      if (transition.events.length === 0) return { request: current, events: [] };
      return { request: current, events: await appendEvents(deps, current, transition.events) };
    }
    assertAuditable(deps, transition.events);
    const result = await deps.store.commit(transition.request, current.version, transition.events);
    if (!result.ok) continue;
    deps.recent?.remember(transition.request);
    await persist(deps, result.events);
    announce(deps, transition.request, result.events);
    return { request: transition.request, events: result.events };
  }
  throw new WritError("conflict", "The request is changing too fast; try again.");
}
