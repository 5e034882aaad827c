import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import {
  type RedisClusterServers,
  type RedisServer,
  redisCommand,
  startRedisCluster,
  waitUntilReplicaOf,
} from "../support/redis.js";
import { waitFor } from "../support/wait.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { expectServedAcrossFailover } from "./failover.js";

// `writ serve` on a Redis Cluster of three masters, each with a replica, while
// the replica of the master holding writ's keys takes over (CLUSTER FAILOVER):
// writ follows the new master by itself, its change feed and audit log included.

let dir: string;
let cluster: RedisClusterServers;
let setup: ProductionSetup;
let writ: WritProcess;
const key = (id: string) => setup.key(id);

/** `CLUSTER NODES` of one node: the id, port and master id of every node. */
async function clusterNodes(node: RedisServer) {
  const text = String(await redisCommand(node.url, ["CLUSTER", "NODES"]));
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id, address, , master] = line.split(" ");
      return {
        id: id as string,
        port: Number(address?.split("@")[0]?.split(":")[1]),
        master: master as string,
      };
    });
}

/** The node serving the slot of writ's keys (all share the `{writ}` hash tag), and its replica. */
async function writsShard(): Promise<{ master: RedisServer; replica: RedisServer }> {
  const [node] = cluster.nodes;
  const slot = Number(
    await redisCommand((node as RedisServer).url, ["CLUSTER", "KEYSLOT", "{writ}"]),
  );
  const slots = (await redisCommand((node as RedisServer).url, [
    "CLUSTER",
    "SLOTS",
  ])) as unknown[][];
  const range = slots.find(([from, to]) => slot >= Number(from) && slot <= Number(to));
  const masterPort = Number((range?.[2] as unknown[] | undefined)?.[1]);
  const nodes = await clusterNodes(node as RedisServer);
  const masterId = nodes.find((n) => n.port === masterPort)?.id;
  const replicaPort = nodes.find((n) => n.master === masterId)?.port;
  const byPort = (port: number | undefined) => {
    const found = cluster.nodes.find((n) => n.port === port);
    if (found === undefined) throw new Error(`no node on port ${port}`);
    return found;
  };
  return { master: byPort(masterPort), replica: byPort(replicaPort) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-cluster-failover-"));
  cluster = await startRedisCluster(3, 1);
  setup = await createProductionSetup(dir);
  const config = await setup.writeConfig("a", { redis: { nodes: cluster.urls } });
  writ = await startWritProcess(["serve", "--config", config, "--quiet"]);
}, 90_000);

afterAll(async () => {
  await writ?.stop();
  await cluster?.dispose();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

describe("writ serve through a Redis Cluster failover", () => {
  it("moves to the promoted replica by itself: changes, wake-ups and its audit log go on", async () => {
    const { master, replica } = await writsShard();
    await expectServedAcrossFailover({
      writ,
      key,
      dataDir: join(dir, "a"),
      promotedUrl: replica.url,
      async failover() {
        // A manual failover: the replica catches up with its master, then the two swap roles.
        await redisCommand(replica.url, ["CLUSTER", "FAILOVER"]);
        await waitFor("the replica to become the master", async () =>
          String(await redisCommand(replica.url, ["INFO", "replication"])).includes("role:master"),
        );
        await waitUntilReplicaOf(master, replica);
      },
    });
  });
});
