import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { WritError } from "../../src/domain/errors.js";
import type { DomainEvent } from "../../src/domain/events.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore, StreamWaitOptions } from "../../src/ports/store.js";

function event(n: number): DomainEvent {
  return {
    type: "token.replay_blocked",
    requestId: `req_${n}`,
    actor: { kind: "resource_server", id: "billing-api" },
    time: Date.parse("2026-01-15T09:00:00Z") + n,
    data: { credential_id: `jti_${n}` },
  };
}

/** Shortest pause the follower must make between two attempts after a failure. */
const MIN_PAUSE_MS = 40;

describe("the audit log follower's waits", () => {
  let dir: string;
  let store: RequestStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-follow-waits-"));
    store = createMemoryStore();
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("asks as an internal follower, and pauses after a refused read instead of spinning", async () => {
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
