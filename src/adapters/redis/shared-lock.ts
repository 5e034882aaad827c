import { randomBytes } from "node:crypto";
import { WritError } from "../../domain/errors.js";
import type { Logger } from "../../ports/logger.js";
import type { SharedLock } from "../../ports/shared-lock.js";
import { systemTimer, type Timer } from "../../ports/timer.js";
import type { RedisEvalClient } from "../notification-state-redis.js";
import { withDeadline } from "./deadline.js";

export interface RedisSharedLockOptions {
  readonly client: RedisEvalClient;
  /**
   * Key prefix with the store's hash tag (default `{writ}`), so on Cluster the
   * lock keys live in the same slot as the store's.
   */
  readonly prefix?: string;
  /**
   * How long a lock is held at most (default 60,000 ms): longer than the work
   * it guards can take, short enough that a crashed holder's lock soon lapses.
   */
  readonly leaseMs?: number;
  /** How long to wait for another holder before giving up (default 15,000 ms). */
  readonly waitMs?: number;
  /** The pause between attempts to take a taken lock (default 100 ms). */
  readonly retryMs?: number;
  /** Deadline of each Redis call (default 5,000 ms). */
  readonly operationTimeoutMs?: number;
  readonly timer?: Timer;
  readonly logger: Logger;
}

// Taken only if free, with a random token naming this holder and a lease.
const ACQUIRE =
  "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end return 0";
// Compare and delete in one step: a holder whose lease lapsed must never delete
// the lock another holder has taken since.
const RELEASE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/**
 * A {@link SharedLock} in Redis: `SET NX PX` with a random token per holder,
 * released by compare-and-delete. Keys: `<prefix>:lock:<name>`.
 */
export function createRedisSharedLock(options: RedisSharedLockOptions): SharedLock {
  const { client, logger } = options;
  const prefix = `${options.prefix ?? "{writ}"}:lock`;
  const leaseMs = options.leaseMs ?? 60_000;
  const waitMs = options.waitMs ?? 15_000;
  const retryMs = options.retryMs ?? 100;
  const timeoutMs = options.operationTimeoutMs ?? 5_000;
  const timer = options.timer ?? systemTimer;
  const run = (script: string, key: string, args: string[]) =>
    withDeadline(timeoutMs, client.eval(script, { keys: [key], arguments: args }));

  async function acquire(key: string, token: string): Promise<boolean> {
    try {
      return Number(await run(ACQUIRE, key, [token, String(leaseMs)])) === 1;
    } catch {
      throw new WritError("store_unavailable", "The store could not be reached to take a lock.");
    }
  }

  return {
    async withLock(name, work) {
      const key = `${prefix}:${name}`;
      const token = randomBytes(16).toString("base64url");
      // Counted in attempts rather than read off a clock, so the bound holds
      // whatever time tests inject.
      const attempts = Math.max(1, Math.ceil(waitMs / retryMs) + 1);
      let held = false;
      for (let attempt = 0; attempt < attempts && !held; attempt++) {
        if (attempt > 0) await timer.sleep(retryMs);
        held = await acquire(key, token);
      }
      if (!held) {
        throw new WritError("conflict", "Another writ process holds the lock; try again.");
      }
      try {
        return await work();
      } finally {
        try {
          if (Number(await run(RELEASE, key, [token])) !== 1) {
            logger.warn("shared lock lapsed before its holder finished", { lock: name });
          }
        } catch {
          // The lease ends it anyway; the work itself is done.
          logger.warn("shared lock could not be released; its lease will end it", { lock: name });
        }
      }
    },
  };
}
