import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, createRedisStore } from "../../src/adapters/redis-store.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createStreamFollowingLog } from "../../src/audit/stream-follower.js";
import { isWritError } from "../../src/domain/errors.js";
import type { Logger } from "../../src/ports/logger.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";
import { sampleEvent, sampleRequest } from "./store-contract.js";

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string) => {
    lines.push(`${level} ${message}`);
  };
  return { lines, info: keep("info"), warn: keep("warn"), error: keep("error") };
}

describe("a Redis stream that lost entries writ's audit log already holds, with new ids below them", () => {
  let server: RedisServer;
  let dir: string;
  beforeAll(async () => {
    // No AOF: a restart comes back empty, as after a failover to a replica
    // that never received the stream.
    server = await startRedisServer();
    dir = await mkdtemp(join(tmpdir(), "writ-rewind-"));
  });
  afterAll(async () => {
    await server?.dispose();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("refuses changes whose events the log would pass over, instead of acknowledging them", async () => {
    const logger = recordingLogger();
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const client = await connectRedis({ url: server.url, maxReconnectDelayMs: 100, logger });
    const store = createRedisStore({ client, prefix, closeClient: true, logger });
    const file = await openFileAuditLog({ dir });
    const log = createStreamFollowingLog({
      store,
      file,
      logger,
      after: undefined,
      appendTimeoutMs: 2_000,
      onDurable: (cursor) => store.recordLogCursor("replica-1", cursor),
    });
    /** A change as the use cases make it: recorded, then acknowledged once the log holds it. */
    const change = async () => {
      const request = sampleRequest();
      const result = await store.create(request, [sampleEvent(request.id)]);
      if (!result.ok) throw new Error("conflict");
      await log.append(result.events);
      return request.id;
    };
    const acknowledged: string[] = [];
    let refused: unknown;
    try {
      acknowledged.push(await change());
      // The server's clock runs an hour ahead: the stream's ids follow it.
      await redisCommand(server.url, [
        "XSETID",
        `{${prefix}}:events`,
        `${Date.now() + 3_600_000}-0`,
      ]);
      acknowledged.push(await change());

      // Redis comes back without its data, and with its clock right.
      await server.restart();
      const deadline = performance.now() + 10_000;
      while (!(await store.ready())) {
        if (performance.now() > deadline) throw new Error("the store did not come back");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      try {
        acknowledged.push(await change());
      } catch (error) {
        refused = error;
      }
    } finally {
      await log.close();
      await store.close();
    }
    const written = (await readFile(file.path, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { request_id: string }).request_id);
    // Nothing was acknowledged that the log does not hold.
    for (const id of acknowledged) expect(written).toContain(id);
    expect(isWritError(refused) && refused.code).toBe("store_unavailable");
    expect(logger.lines.some((line) => /^error .*stream.*behind/.test(line))).toBe(true);
  });
});
