import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import {
  type RedisSentinelServer,
  type RedisServer,
  redisCommand,
  replyFields,
  startRedisSentinel,
  startRedisServer,
  waitUntilReplicaOf,
} from "../support/redis.js";
import { waitFor } from "../support/wait.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { expectServedAcrossFailover } from "./failover.js";

// `writ serve` on Redis Sentinel while Sentinel promotes the replica: writ
// follows the new primary by itself, its change feed and audit log included,
// with no restart.

let dir: string;
let primary: RedisServer;
let replica: RedisServer;
let sentinel: RedisSentinelServer;
let setup: ProductionSetup;
let writ: WritProcess;
const key = (id: string) => setup.key(id);

/** The port of the primary Sentinel names now. */
async function namedPrimaryPort(): Promise<number> {
  const reply = (await redisCommand(sentinel.url, [
    "SENTINEL",
    "GET-MASTER-ADDR-BY-NAME",
    sentinel.name,
  ])) as string[];
  return Number(reply[1]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-sentinel-failover-"));
  primary = await startRedisServer();
  replica = await startRedisServer({ replicaOf: primary });
  await waitUntilReplicaOf(replica, primary);
  sentinel = await startRedisSentinel(primary);
  // Sentinel learns of replicas from the primary's INFO: only a known one can be promoted.
  await waitFor("Sentinel to know the replica", async () => {
    const replicas = (await redisCommand(sentinel.url, [
      "SENTINEL",
      "REPLICAS",
      sentinel.name,
    ])) as unknown[];
    return replicas.some((entry) => {
      const fields = replyFields(entry);
      return fields.port === String(replica.port) && fields.flags === "slave";
    });
  });
  setup = await createProductionSetup(dir);
  const config = await setup.writeConfig("a", {
    redis: {
      sentinel: { name: sentinel.name, nodes: [{ host: "127.0.0.1", port: sentinel.port }] },
    },
  });
  writ = await startWritProcess(["serve", "--config", config, "--quiet"]);
}, 60_000);

afterAll(async () => {
  const code = await writ?.stop();
  await sentinel?.dispose();
  await replica?.dispose();
  await primary?.dispose();
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(0);
}, 30_000);

describe("writ serve through a Sentinel failover", () => {
  it("moves to the promoted replica by itself: changes, wake-ups and its audit log go on", async () => {
    expect(await namedPrimaryPort()).toBe(primary.port);
    await expectServedAcrossFailover({
      writ,
      key,
      dataDir: join(dir, "a"),
      promotedUrl: replica.url,
      async failover() {
        await redisCommand(sentinel.url, ["SENTINEL", "FAILOVER", sentinel.name]);
        await waitFor(
          "Sentinel to name the replica",
          async () => (await namedPrimaryPort()) === replica.port,
        );
        await waitUntilReplicaOf(primary, replica);
      },
    });
  });
});
