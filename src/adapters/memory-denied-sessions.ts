import type { DeniedSession, DeniedSessionLedger } from "../ports/denied-sessions.js";

/**
 * The ledger in this process's memory: for the memory store, where this one
 * process is every writer there is.
 */
export function createMemoryDeniedSessions(): DeniedSessionLedger {
  const byScope = new Map<string, Map<string, { session: DeniedSession; until: number }>>();

  function retained(scope: string, now: number): DeniedSession[] {
    const entries = byScope.get(scope);
    if (entries === undefined) return [];
    for (const [grant, entry] of entries) if (entry.until < now) entries.delete(grant);
    if (entries.size === 0) byScope.delete(scope);
    return [...entries.values()].map((entry) => entry.session);
  }

  return {
    shared: false,
    async add(scope, session, retainUntil) {
      let entries = byScope.get(scope);
      if (entries === undefined) {
        entries = new Map();
        byScope.set(scope, entries);
      }
      const before = entries.get(session.grant);
      entries.set(session.grant, { session, until: Math.max(retainUntil, before?.until ?? 0) });
      return before === undefined;
    },
    async remove(scope, session) {
      const entries = byScope.get(scope);
      if (entries?.delete(session.grant) === true && entries.size === 0) byScope.delete(scope);
    },
    async live(scope, now) {
      return retained(scope, now);
    },
    async scopes(now) {
      return [...byScope.keys()].filter((scope) => retained(scope, now).length > 0);
    },
  };
}
