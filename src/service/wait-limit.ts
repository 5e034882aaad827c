import { WritError } from "../domain/errors.js";
import type { Principal } from "../domain/principal.js";

/** How long a caller refused with `too_many_waits` is told to wait before trying again. */
export const WAIT_RETRY_AFTER_SECONDS = 1;

/**
 * Caps the long-polls one principal holds at once in this process
 * (`GET /v1/requests/{id}?wait=`, `GET /v1/events?wait=`). The store's waiter
 * pools are shared by every caller; without a cap, one agent holding thousands
 * of long-polls would leave none for anyone else.
 */
export interface WaitLimit {
  /**
   * Takes one of the principal's slots, or throws `too_many_waits` when it
   * holds them all. The returned function gives the slot back; calling it
   * again does nothing.
   */
  begin(principal: Principal): () => void;
}

/** A wait limit of `maxPerPrincipal` concurrent long-polls per principal. */
export function createWaitLimit(maxPerPrincipal: number): WaitLimit {
  if (!Number.isSafeInteger(maxPerPrincipal) || maxPerPrincipal < 1) {
    throw new TypeError("maxPerPrincipal must be a positive integer");
  }
  const held = new Map<string, number>();
  return {
    begin(principal) {
      // Kinds have their own id spaces: an agent and a reviewer may share an id.
      const key = `${principal.kind}:${principal.id}`;
      const count = held.get(key) ?? 0;
      if (count >= maxPerPrincipal) {
        throw new WritError(
          "too_many_waits",
          `At most ${maxPerPrincipal} long-polls may wait at once for one caller; end one, or retry without waiting.`,
          { max_waits: maxPerPrincipal, retry_after_seconds: WAIT_RETRY_AFTER_SECONDS },
        );
      }
      held.set(key, count + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (held.get(key) ?? 1) - 1;
        if (left > 0) held.set(key, left);
        else held.delete(key);
      };
    },
  };
}
