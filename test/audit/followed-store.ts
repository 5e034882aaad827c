import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import type { DomainEvent } from "../../src/domain/events.js";
import type { RequestStore } from "../../src/ports/store.js";

/** The n-th event of a followed stream: a blocked token replay, distinct per `n`. */
export function replayBlockedEvent(n: number): DomainEvent {
  return {
    type: "token.replay_blocked",
    requestId: `req_${n}`,
    actor: { kind: "resource_server", id: "billing-api" },
    time: Date.parse("2026-01-15T09:00:00Z") + n,
    data: { credential_id: `jti_${n}` },
  };
}

/**
 * For each test of the calling `describe`: a fresh directory (named from
 * `prefix`) for the audit log and an empty memory store, closed and removed
 * after it. Read `dir` and `store` inside the tests.
 */
export function dirAndStoreForEachTest(prefix: string): {
  readonly dir: string;
  readonly store: RequestStore;
} {
  let dir: string | undefined;
  let store: RequestStore | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    store = createMemoryStore();
  });
  afterEach(async () => {
    await store?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the directory and store are read outside a test");
    return value;
  };
  return {
    get dir() {
      return ready(dir);
    },
    get store() {
      return ready(store);
    },
  };
}
