import { randomBytes } from "node:crypto";
import type { DeniedSession, DeniedSessionLedger } from "../ports/denied-sessions.js";

interface Entry {
  readonly session: DeniedSession;
  until: number;
  /** The callers that recorded the session and have not withdrawn. */
  readonly claims: Set<string>;
}

/**
 * The ledger in this process's memory: for the memory store, where this one
 * process is every writer there is.
 */
export function createMemoryDeniedSessions(): DeniedSessionLedger {
  const byScope = new Map<string, Map<string, Entry>>();

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
      const claim = randomBytes(16).toString("base64url");
      const entry = entries.get(session.grant);
      if (entry === undefined) {
        entries.set(session.grant, { session, until: retainUntil, claims: new Set([claim]) });
      } else {
        entry.until = Math.max(entry.until, retainUntil);
        entry.claims.add(claim);
      }
      return claim;
    },
    async withdraw(scope, session, claim) {
      const entries = byScope.get(scope);
      const entry = entries?.get(session.grant);
      if (entries === undefined || entry === undefined) return;
      entry.claims.delete(claim);
      if (entry.claims.size > 0) return;
      entries.delete(session.grant);
      if (entries.size === 0) byScope.delete(scope);
    },
    async live(scope, now) {
      return retained(scope, now);
    },
    async scopes(now) {
      return [...byScope.keys()].filter((scope) => retained(scope, now).length > 0);
    },
  };
}
