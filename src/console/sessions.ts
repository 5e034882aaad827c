import { randomBytes } from "node:crypto";
import type { Auditor, Reviewer } from "../domain/principal.js";
import type { Clock } from "../ports/clock.js";

/** Who may sign in to the console: people who review or audit, never agents or services. */
export type ConsolePrincipal = Reviewer | Auditor;

export interface ConsoleSession {
  readonly principal: ConsolePrincipal;
  /**
   * The tag of the key signed in with (`IdentityDirectory.keyTag`), never the
   * key: once the principal holds another key, the session is over.
   */
  readonly keyTag: string;
  /** Checked on every form this session posts. */
  readonly csrfToken: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
}

export interface SessionStoreOptions {
  readonly clock: Clock;
  readonly idleTimeoutSeconds: number;
  readonly maxAgeSeconds: number;
  /** Most live sessions; the oldest goes first beyond it (default 10,000). */
  readonly maxSessions?: number;
}

/**
 * Console sessions, kept server-side: the cookie holds only a random id. A store
 * shared by every process (Redis) lets any replica or worker serve any page; one
 * in memory signs a browser out when its next request lands elsewhere.
 */
export interface SessionStore {
  create(
    principal: ConsolePrincipal,
    keyTag: string,
  ): Promise<{ id: string; session: ConsoleSession }>;
  /** The live session with this id, touched; undefined when unknown or expired. */
  get(id: string): Promise<ConsoleSession | undefined>;
  destroy(id: string): Promise<void>;
}

/** 256 bits from the OS CSPRNG, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

/** A new session for `principal`: a fresh random id and CSRF token. */
export function newSession(
  principal: ConsolePrincipal,
  keyTag: string,
  now: number,
): { id: string; session: ConsoleSession } {
  return {
    id: randomToken(),
    session: { principal, keyTag, csrfToken: randomToken(), createdAt: now, lastSeenAt: now },
  };
}

/** What a session id looks like (`randomToken`); anything else is no session. */
export const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** Whether a session has gone idle too long or lived too long, at `now`. */
export function sessionExpired(
  session: Pick<ConsoleSession, "createdAt" | "lastSeenAt">,
  now: number,
  options: Pick<SessionStoreOptions, "idleTimeoutSeconds" | "maxAgeSeconds">,
): boolean {
  return (
    now - session.lastSeenAt >= options.idleTimeoutSeconds * 1000 ||
    now - session.createdAt >= options.maxAgeSeconds * 1000
  );
}

/**
 * In-memory sessions with an idle timeout and an absolute lifetime, on the
 * injected clock. A process restart signs everyone out, which is safe.
 */
export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const { clock } = options;
  const maxSessions = options.maxSessions ?? 10_000;
  // Insertion order is creation order, so the first key is the oldest session.
  const sessions = new Map<string, ConsoleSession>();

  const expired = (s: ConsoleSession, now: number) => sessionExpired(s, now, options);

  function sweep(now: number) {
    for (const [id, s] of sessions) if (expired(s, now)) sessions.delete(id);
  }

  return {
    async create(principal, keyTag) {
      const now = clock.now();
      sweep(now);
      while (sessions.size >= maxSessions) {
        const oldest = sessions.keys().next().value;
        if (oldest === undefined) break;
        sessions.delete(oldest);
      }
      const created = newSession(principal, keyTag, now);
      sessions.set(created.id, created.session);
      return created;
    },
    async get(id) {
      if (!SESSION_ID.test(id)) return undefined;
      const session = sessions.get(id);
      if (session === undefined) return undefined;
      const now = clock.now();
      if (expired(session, now)) {
        sessions.delete(id);
        return undefined;
      }
      const touched = { ...session, lastSeenAt: now };
      sessions.set(id, touched);
      return touched;
    },
    async destroy(id) {
      sessions.delete(id);
    },
  };
}
