import { describe, expect, it } from "vitest";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { WritError } from "../../src/domain/errors.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore, StreamWaitOptions } from "../../src/ports/store.js";
import { dirAndStoreForEachTest, replayBlockedEvent as event } from "./followed-store.js";

/** Shortest pause the follower must make between two attempts after a failure. */
const MIN_PAUSE_MS = 40;

describe("the audit log follower's waits", () => {
  const fresh = dirAndStoreForEachTest("writ-follow-waits-");

  it("asks as an internal follower, and pauses after a refused read instead of spinning", async () => {
    const { dir, store } = fresh;
    const options: (StreamWaitOptions | undefined)[] = [];
    const refusedAt: number[] = [];
    let reads = 0;
    const refusing: RequestStore = {
      ...store,
      events: (query) => {
        reads++;
        return store.events(query);
      },
      // The first read is answered; the next five are refused as a full pool
      // refuses, on a later turn as Redis would; then reads are answered again.
      nextEvents: (after, readOptions) => {
        options.push(readOptions);
        if (options.length === 1 || refusedAt.length >= 5)
          return store.nextEvents(after, readOptions);
        return new Promise((_, reject) =>
          setImmediate(() => {
            refusedAt.push(performance.now());
            reject(new WritError("store_unavailable", "Too many readers are waiting."));
          }),
        );
      },
    };
    const file = await openFileAuditLog({ dir });
    const log = createStreamFollowingLog({
      store: refusing,
      file,
      logger: silentLogger,
      after: undefined,
    });
    try {
      const recorded = await store.append([event(1)]);
      await log.append(recorded);
      await expect.poll(() => refusedAt.length, { timeout: 5_000 }).toBe(5);
      expect(options.every((o) => o?.internal === true)).toBe(true);
      for (let i = 1; i < refusedAt.length; i++) {
        expect((refusedAt[i] as number) - (refusedAt[i - 1] as number)).toBeGreaterThanOrEqual(
          MIN_PAUSE_MS,
        );
      }
      // Nothing else reads the stream meanwhile: the loop does not spin on it either.
      expect(reads).toBe(0);
      // It writes what comes once reads are answered again.
      await log.append(await store.append([event(2)]));
    } finally {
      await log.close();
    }
  });
});
