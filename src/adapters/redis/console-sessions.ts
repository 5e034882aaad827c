import { createHash } from "node:crypto";
import {
  type ConsolePrincipal,
  type ConsoleSession,
  newSession,
  SESSION_ID,
  type SessionStore,
  type SessionStoreOptions,
  sessionExpired,
} from "../../console/sessions.js";
import { WritError } from "../../domain/errors.js";
import { withDeadline } from "./deadline.js";

/** What the session store needs of a node-redis client (standalone, Sentinel or Cluster). */
export interface SessionRedisClient {
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  hGetAll(key: string): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

export interface RedisSessionStoreOptions
  extends Pick<SessionStoreOptions, "clock" | "idleTimeoutSeconds" | "maxAgeSeconds"> {
  client: SessionRedisClient;
  /** Key prefix with the store's hash tag (default `{writ}`). */
  prefix?: string;
  /** Deadline of each call; past it the page answers `store_unavailable` (default 5,000 ms). */
  operationTimeoutMs?: number;
}

/** Writes a session's fields and sets when Redis may forget it, in one step. */
const SAVE_SCRIPT = `
redis.call("HSET", KEYS[1], unpack(ARGV, 2))
redis.call("PEXPIRE", KEYS[1], ARGV[1])
return 1
`;

/** Redis keeps a session this long past its idle deadline: the clock check decides, expiry only cleans up. */
const CLEANUP_MARGIN_MS = 60_000;

function isPrincipal(value: unknown): value is ConsolePrincipal {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  if (typeof p.id !== "string" || p.id === "") return false;
  if (p.kind === "auditor") return true;
  return (
    p.kind === "reviewer" &&
    Array.isArray(p.groups) &&
    p.groups.every((g: unknown) => typeof g === "string")
  );
}

/**
 * Console sessions in Redis, shared by every replica and worker: a browser
 * signed in on one is signed in on all. Keys are named by the SHA-256 of the
 * session id, so whoever can read Redis still cannot present a session. Expiry
 * (idle and absolute) is decided on writ's clock at every read; Redis's own
 * expiry only removes sessions nobody came back to. Redis failures answer
 * `store_unavailable`: no session is assumed.
 */
export function createRedisSessionStore(options: RedisSessionStoreOptions): SessionStore {
  const { client, clock } = options;
  const prefix = options.prefix ?? "{writ}";
  const timeoutMs = options.operationTimeoutMs ?? 5_000;
  const keyOf = (id: string) =>
    `${prefix}:console:${createHash("sha256").update(id).digest("hex")}`;

  async function call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await withDeadline(timeoutMs, run());
    } catch {
      throw new WritError(
        "store_unavailable",
        "The session store is unavailable; try again later.",
      );
    }
  }

  /** Until Redis may drop the session: its idle deadline, or sooner its absolute one. */
  function keepMs(session: ConsoleSession, now: number): number {
    const idle = session.lastSeenAt + options.idleTimeoutSeconds * 1000;
    const max = session.createdAt + options.maxAgeSeconds * 1000;
    return Math.max(1, Math.min(idle, max) - now) + CLEANUP_MARGIN_MS;
  }

  function save(id: string, session: ConsoleSession, now: number, fields: string[]) {
    return call(() =>
      client.eval(SAVE_SCRIPT, {
        keys: [keyOf(id)],
        arguments: [String(keepMs(session, now)), ...fields],
      }),
    );
  }

  return {
    async create(principal, keyTag) {
      const now = clock.now();
      const { id, session } = newSession(principal, keyTag, now);
      await save(id, session, now, [
        "p",
        JSON.stringify(principal),
        "k",
        keyTag,
        "c",
        session.csrfToken,
        "t0",
        String(now),
        "t",
        String(now),
      ]);
      return { id, session };
    },

    async get(id) {
      if (!SESSION_ID.test(id)) return undefined;
      const fields = (await call(() => client.hGetAll(keyOf(id)))) as Record<string, unknown>;
      const principal = typeof fields.p === "string" ? safeParse(fields.p) : undefined;
      const createdAt = Number(fields.t0);
      const lastSeenAt = Number(fields.t);
      // A session written without a key tag (before tags existed) is no session.
      if (
        !isPrincipal(principal) ||
        typeof fields.k !== "string" ||
        typeof fields.c !== "string" ||
        !Number.isSafeInteger(createdAt) ||
        !Number.isSafeInteger(lastSeenAt)
      ) {
        return undefined;
      }
      const now = clock.now();
      const session: ConsoleSession = {
        principal,
        keyTag: fields.k,
        csrfToken: fields.c,
        createdAt,
        lastSeenAt,
      };
      if (sessionExpired(session, now, options)) {
        await call(() => client.del(keyOf(id)));
        return undefined;
      }
      const touched = { ...session, lastSeenAt: now };
      await save(id, touched, now, ["t", String(now)]);
      return touched;
    },

    async destroy(id) {
      if (!SESSION_ID.test(id)) return;
      await call(() => client.del(keyOf(id)));
    },
  };
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
