import { randomBytes } from "node:crypto";
import type { Auditor, Reviewer } from "../domain/principal.js";
import type { Clock } from "../ports/clock.js";

/** Who may sign in to the console: people who review or audit, never agents or services. */
export type ConsolePrincipal = Reviewer | Auditor;

export interface ConsoleSession {
  readonly principal: ConsolePrincipal;
  /** Checked on every form this session posts. */
  readonly csrfToken: string;
  readonly createdAt: number;
  lastSeenAt: number;
}

export interface SessionStoreOptions {
  readonly clock: Clock;
  readonly idleTimeoutSeconds: number;
  readonly maxAgeSeconds: number;
  /** Most live sessions; the oldest goes first beyond it (default 10,000). */
  readonly maxSessions?: number;
}

/** Console sessions, kept server-side: the cookie holds only a random id. */
export interface SessionStore {
  create(principal: ConsolePrincipal): { id: string; session: ConsoleSession };
  /** The live session with this id, touched; undefined when unknown or expired. */
  get(id: string): ConsoleSession | undefined;
  destroy(id: string): void;
  size(): number;
}

/** 256 bits from the OS CSPRNG, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/**
 * In-memory sessions with an idle timeout and an absolute lifetime, on the
 * injected clock. A process restart signs everyone out, which is safe.
 */
export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const { clock } = options;
  const idleMs = options.idleTimeoutSeconds * 1000;
  const maxAgeMs = options.maxAgeSeconds * 1000;
  const maxSessions = options.maxSessions ?? 10_000;
  // Insertion order is creation order, so the first key is the oldest session.
  const sessions = new Map<string, ConsoleSession>();

  const expired = (s: ConsoleSession, now: number) =>
    now - s.lastSeenAt >= idleMs || now - s.createdAt >= maxAgeMs;

  function sweep(now: number) {
    for (const [id, s] of sessions) if (expired(s, now)) sessions.delete(id);
  }

  return {
    create(principal) {
      const now = clock.now();
      sweep(now);
      while (sessions.size >= maxSessions) {
        const oldest = sessions.keys().next().value;
        if (oldest === undefined) break;
        sessions.delete(oldest);
      }
      const id = randomToken();
      const session: ConsoleSession = {
        principal,
        csrfToken: randomToken(),
        createdAt: now,
        lastSeenAt: now,
      };
      sessions.set(id, session);
      return { id, session };
    },
    get(id) {
      if (!SESSION_ID.test(id)) return undefined;
      const session = sessions.get(id);
      if (session === undefined) return undefined;
      const now = clock.now();
      if (expired(session, now)) {
        sessions.delete(id);
        return undefined;
      }
      session.lastSeenAt = now;
      return session;
    },
    destroy(id) {
      sessions.delete(id);
    },
    size: () => sessions.size,
  };
}
