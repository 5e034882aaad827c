import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APPROVAL_FLOW_EVENTS, CUSTOMERS_EXPORT } from "../support/api.js";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import {
  type RedisSentinelServer,
  type RedisServer,
  startRedisSentinel,
  startRedisServer,
} from "../support/redis.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { approvalFlow } from "./http.js";

// `writ serve` configured with redis.sentinel: it asks a real Sentinel for the
// primary, authenticating to the Sentinel and to the primary with passwords
// of their own, both given by reference as in production.

const primaryPassword = `primary-${randomBytes(12).toString("hex")}`;
const sentinelPassword = `sentinel-${randomBytes(12).toString("hex")}`;

let dir: string;
let primary: RedisServer;
let sentinel: RedisSentinelServer;
let setup: ProductionSetup;
let writ: WritProcess;
const key = (id: string) => setup.key(id);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-sentinel-serve-"));
  primary = await startRedisServer({ password: primaryPassword });
  sentinel = await startRedisSentinel(primary, "writ-primary", {
    primaryPassword,
    password: sentinelPassword,
  });
  setup = await createProductionSetup(dir);
  const sentinelPasswordFile = join(dir, "sentinel-password");
  await writeFile(sentinelPasswordFile, `${sentinelPassword}\n`, { mode: 0o600 });
  const config = await setup.writeConfig("a", {
    redis: {
      sentinel: {
        name: sentinel.name,
        nodes: [{ host: "127.0.0.1", port: sentinel.port }],
        password_file: sentinelPasswordFile,
      },
      password_env: "WRIT_TEST_PRIMARY_PASSWORD",
      stream_trim: { max_len: 1000 },
    },
  });
  writ = await startWritProcess(["serve", "--config", config], {
    WRIT_TEST_PRIMARY_PASSWORD: primaryPassword,
  });
}, 60_000);

afterAll(async () => {
  const code = await writ?.stop();
  await sentinel?.dispose();
  await primary?.dispose();
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(0);
}, 30_000);

describe("writ serve on Redis Sentinel", () => {
  it("serves a whole request, approval, collect and consume through the primary Sentinel names", async () => {
    const { events } = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
    expect(events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
    // The state is in the primary the Sentinel named, under writ's keys.
    const client = await createClient({ url: primary.url })
      .on("error", () => {})
      .connect();
    try {
      expect(await client.xLen("{writ}:events")).toBeGreaterThanOrEqual(events.length);
      // Its audit log reports how far it has written, for stream trimming.
      expect(Object.keys(await client.hGetAll("{writ}:followers"))).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it("went through a Sentinel that admits no one without its password", async () => {
    // A bare PING in the Redis protocol, answered before anything else.
    const socket = connect(sentinel.port, "127.0.0.1");
    try {
      socket.write("PING\r\n");
      const [reply] = (await once(socket, "data")) as [Buffer];
      expect(reply.toString()).toMatch(/^-NOAUTH/);
    } finally {
      socket.destroy();
    }
  });

  it("says where it connected, and never shows either password", async () => {
    const output = writ.stdout() + writ.stderr();
    expect(output).toMatch(
      new RegExp(`sentinel writ-primary via redis://127\\.0\\.0\\.1:${sentinel.port}`),
    );
    expect(output).not.toContain(primaryPassword);
    expect(output).not.toContain(sentinelPassword);
  });
});
