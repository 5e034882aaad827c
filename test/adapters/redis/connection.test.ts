import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asGroupConnection } from "../../../src/adapters/redis/consumer-group.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStore,
} from "../../../src/adapters/redis-store.js";
import { isWritError } from "../../../src/domain/errors.js";
import { silentLogger } from "../../../src/ports/logger.js";
import {
  type RedisServer,
  redisCommand,
  startRedisServer,
  waitUntilReplicaOf,
} from "../../support/redis.js";
import { startTcpProxy, type TcpProxy } from "../../support/tcp-proxy.js";
import { sampleEvent, sampleRequest } from "../store-contract.js";

const freshPrefix = () => `t${randomBytes(6).toString("hex")}`;

/** Resolves once a new request can be created, or fails after `ms`: the store must recover on its own. */
async function untilWritable(store: RedisStore, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const request = sampleRequest();
    try {
      await store.create(request, [sampleEvent(request.id)]);
      return;
    } catch (error) {
      if (!isWritError(error) || error.code !== "store_unavailable") throw error;
      if (performance.now() > deadline) throw new Error("the store did not recover by itself");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe("the connection to a standalone Redis", () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    primary = await startRedisServer();
    replica = await startRedisServer({ replicaOf: primary });
    await waitUntilReplicaOf(replica, primary);
  });
  afterAll(async () => {
    await proxy?.close();
    await Promise.allSettled([replica?.dispose(), primary?.dispose()]);
  });

  it("is made again when it dies silently (no reset, no close), and writ serves again by itself", async () => {
    const ownProxy = await startTcpProxy(primary.port);
    const client = await connectRedis({
      url: ownProxy.url,
      commandTimeouts: false,
      healthCheckMs: 200,
      logger: silentLogger,
    });
    const store = createRedisStore({
      client,
      prefix: freshPrefix(),
      operationTimeoutMs: 300,
      logger: silentLogger,
    });
    try {
      await untilWritable(store);
      // The connection's packets now go nowhere, as when the server's host
      // vanished or a firewall forgot the connection; Redis itself is fine.
      ownProxy.stall();
      const request = sampleRequest();
      const error = await store.create(request, [sampleEvent(request.id)]).catch((e) => e);
      expect(isWritError(error) && error.code).toBe("store_unavailable");
      await untilWritable(store);
      expect(await store.ready()).toBe(true);
    } finally {
      await store.close();
      client.destroy();
      await ownProxy.close();
    }
  });

  it("waits out a blocking read it was told of instead of taking the connection for dead", async () => {
    // As `writ audit tail --group` reads: XREADGROUP waits up to its BLOCK on
    // an idle stream, and a check sent meanwhile is answered only after it.
    const logged: string[] = [];
    const logger = { info: () => {}, warn: (m: string) => logged.push(m), error: () => {} };
    const client = await connectRedis({
      url: primary.url,
      healthCheckMs: 200,
      blockingMs: 1_000,
      logger,
    });
    const group = asGroupConnection(client);
    const stream = freshPrefix();
    try {
      await group.xGroupCreate(stream, "g", "$", { MKSTREAM: true });
      for (let i = 0; i < 2; i++) {
        const reply = await group.xReadGroup("g", "c", { key: stream, id: ">" }, { BLOCK: 1_000 });
        expect(reply).toBeNull();
      }
      expect(logged).toEqual([]);
    } finally {
      await client.close().catch(() => client.destroy());
    }
  });

  it("ends a close that waits on a silent connection, and makes no other", async () => {
    const ownProxy = await startTcpProxy(primary.port);
    const client = await connectRedis({
      url: ownProxy.url,
      healthCheckMs: 200,
      logger: silentLogger,
    });
    try {
      ownProxy.stall();
      // A check goes out on the silent connection; the owner closes meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 250));
      await client.close();
      // Long enough for a connection to be made again, were one made.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(client.isOpen).toBe(false);
    } finally {
      client.destroy();
      await ownProxy.close();
    }
  });

  it("is not ready on a replica, and leaves a primary turned replica for the server its address names now", async () => {
    // A connection straight to a replica: reads answer, writes never will.
    const onReplica = await connectRedis({ url: replica.url, logger: silentLogger });
    const replicaStore = createRedisStore({
      client: onReplica,
      prefix: freshPrefix(),
      logger: silentLogger,
    });
    try {
      expect(await replicaStore.ready()).toBe(false);
    } finally {
      await replicaStore.close();
      await onReplica.close();
    }

    proxy = await startTcpProxy(primary.port);
    const client = await connectRedis({
      url: proxy.url,
      commandTimeouts: false,
      healthCheckMs: 200,
      logger: silentLogger,
    });
    const store = createRedisStore({ client, prefix: freshPrefix(), logger: silentLogger });
    try {
      await untilWritable(store);
      // A failover by hand: the replica takes over, the old primary follows
      // it, and the address writ was given now names the new primary.
      proxy.retarget(replica.port);
      await redisCommand(replica.url, ["REPLICAOF", "NO", "ONE"]);
      await redisCommand(primary.url, ["REPLICAOF", "127.0.0.1", String(replica.port)]);
      await waitUntilReplicaOf(primary, replica);
      await untilWritable(store);
      expect(await store.ready()).toBe(true);
    } finally {
      await store.close();
      await client.close().catch(() => client.destroy());
    }
  });
});
