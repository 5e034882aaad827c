import type { AccessRequest } from "../domain/request.js";

/**
 * The last state this process committed for recently changed requests, so that
 * a change that follows one of its own (an agent collecting the request it just
 * created, a server consuming the token just collected) can skip reading the
 * store. It is only ever a guess: `transact` commits on it with the store's
 * compare-and-swap, which fails if anyone changed the request since; and
 * whenever the guess would decide anything without a commit (an error, or a
 * change that records events without a new version), it checks the stored
 * version first and decides again on the stored state if that moved on.
 */
export interface RecentRequests {
  get(id: string): AccessRequest | undefined;
  /** Remembers `request` as its latest state. */
  remember(request: AccessRequest): void;
  forget(id: string): void;
}

/** At most `limit` requests, the least recently remembered dropped first. */
export function createRecentRequests(limit = 4096): RecentRequests {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new TypeError("limit must be a positive integer");
  }
  const requests = new Map<string, AccessRequest>();
  return {
    get: (id) => requests.get(id),
    remember(request) {
      requests.delete(request.id);
      if (requests.size >= limit) {
        const oldest = requests.keys().next();
        if (oldest.done !== true) requests.delete(oldest.value);
      }
      requests.set(request.id, request);
    },
    forget(id) {
      requests.delete(id);
    },
  };
}
