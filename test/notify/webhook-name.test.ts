import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisNotificationState,
  type RedisEvalClient,
} from "../../src/adapters/notification-state-redis.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { silentLogger } from "../../src/ports/logger.js";
import { allEvents, CUSTOMERS_EXPORT, createRequest } from "../support/api.js";
import { capturingLogger } from "../support/captured-log.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import { type RecordingServer, startRecordingServer } from "../support/recording-server.js";
import { type RedisServer, redisCommand, startRedisServer } from "../support/redis.js";

const HOOK_SECRET = "4b7d1e9a2c5f8b0e3d6a9c2f5b8e1d4a7c0f3b6e9d2a5c8f1b4e7d0a3c6f9b2e";

let server: RedisServer;
let client: RedisStoreClient;
let receiver: RecordingServer;
let dir: string;
let t: TestWrit | undefined;

beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis({ url: server.url, logger: silentLogger });
  receiver = await startRecordingServer();
  dir = await mkdtemp(join(tmpdir(), "writ-hook-name-"));
  await writeFile(join(dir, "secret"), HOOK_SECRET, { mode: 0o600 });
});

afterEach(async () => {
  await t?.close();
  t = undefined;
});

afterAll(async () => {
  await receiver?.close();
  await client?.close();
  await server?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A deployment of writ on one Redis (`prefix`) and one clock, started again
 * with each new configuration of its one webhook, as an operator would.
 */
function deployment() {
  const prefix = `hook${randomBytes(6).toString("hex")}`;
  const clock = new ManualClock();
  return {
    async start(webhook: Record<string, unknown>): Promise<TestWrit> {
      t = await startTestWrit(
        {
          webhooks: [{ ...webhook, secret_file: join(dir, "secret"), events: ["request.created"] }],
          // A failed delivery waits a minute: the writ stops before it tries again.
          notifications: { retry: { initial_ms: 60_000, max_ms: 60_000 } },
        },
        {
          clock,
          store: createRedisStore({ client, prefix, logger: silentLogger }),
          notificationState: createRedisNotificationState({
            client: client as unknown as RedisEvalClient,
            prefix: `{${prefix}}`,
          }),
        },
      );
      return t;
    },
    /**
     * The endpoint at `path` stops answering: a request made now waits behind
     * it, the writ stops, and an hour passes before it starts again.
     */
    async waitingBehind(path: string, running: TestWrit): Promise<string> {
      receiver.answerNext(path, 503);
      const { id } = await createRequest(running, CUSTOMERS_EXPORT);
      await expect
        .poll(() =>
          receiver.requests.some((r) => r.path === path && r.status === 503 && r.body.includes(id)),
        )
        .toBe(true);
      await running.close();
      t = undefined;
      // Its delivery lease lapses, as it does 30 seconds after a replica stops.
      await redisCommand(server.url, [
        "EVAL",
        "for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end",
        "0",
        `{${prefix}}:notify:lease:*`,
      ]);
      clock.advance(3600);
      return id;
    },
  };
}

/** The requests whose `request.created` `path` took, from the `from`th request received on. */
function delivered(path: string, from: number): string[] {
  return receiver.requests
    .slice(from)
    .filter((r) => r.path === path && r.status === 200)
    .map((r) => (JSON.parse(r.body) as { request_id: string }).request_id);
}

/** Creates a request and waits until `path` took it. */
async function createdAndDelivered(running: TestWrit, path: string): Promise<string> {
  const { id } = await createRequest(running, CUSTOMERS_EXPORT);
  await receiver.waitFor((r) => r.path === path && r.body.includes(id));
  return id;
}

describe("a named webhook", () => {
  it("keeps its delivery position when its URL changes: what waited behind the old URL goes to the new one", async () => {
    const writ = deployment();
    await createdAndDelivered(
      await writ.start({ name: "siem", url: `${receiver.url}/old` }),
      "/old",
    );
    const waiting = await writ.waitingBehind("/old", t as TestWrit);

    const from = receiver.requests.length;
    const next = await createdAndDelivered(
      await writ.start({ name: "siem", url: `${receiver.url}/new` }),
      "/new",
    );
    expect(delivered("/new", from)).toEqual([waiting, next]);
  });

  it("first given a name, resumes from the position kept under its URL, and again when renamed", async () => {
    const writ = deployment();
    const url = `${receiver.url}/hook`;
    await createdAndDelivered(await writ.start({ url }), "/hook");
    const waiting = await writ.waitingBehind("/hook", t as TestWrit);

    let from = receiver.requests.length;
    const named = await createdAndDelivered(await writ.start({ name: "siem", url }), "/hook");
    expect(delivered("/hook", from)).toEqual([waiting, named]);

    // A later rename resumes where the name left off, not where the URL once was.
    const waitingAgain = await writ.waitingBehind("/hook", t as TestWrit);
    from = receiver.requests.length;
    const renamed = await createdAndDelivered(await writ.start({ name: "siem-eu", url }), "/hook");
    expect(delivered("/hook", from)).toEqual([waitingAgain, renamed]);
  });

  it("is named by its name in logs and in notification.sent", async () => {
    const { logger, lines } = capturingLogger();
    receiver.answerNext("/named", 503);
    t = await startTestWrit(
      {
        webhooks: [
          { name: "pager", url: `${receiver.url}/named`, secret_file: join(dir, "secret") },
        ],
        notifications: { retry: { initial_ms: 2, max_ms: 20 } },
      },
      { logger },
    );
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const running = t;
    await expect
      .poll(async () =>
        (await allEvents(running, { request_id: id, type: "notification.sent" })).map(
          (e) => e.data,
        ),
      )
      .toEqual([{ channel: "webhook", target: "endpoint", destinations: 1, webhook: "pager" }]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        message: "notification failed; retrying",
        fields: expect.objectContaining({ channel: "webhook:pager" }),
      }),
    );
  });
});

describe("a webhook URL read from a file", () => {
  it("is in no log line and no event, whatever the receiver answers", async () => {
    const { logger, lines } = capturingLogger();
    const key = "FNKEY7c1d9e2b4a6f";
    const path = `/fn?code=${key}`;
    await writeFile(join(dir, "url"), `${receiver.url}${path}\n`, { mode: 0o600 });
    // Down, then refusing the first event for good, then taking the rest.
    receiver.answerNext(path, 503, 404, 404, 404);
    t = await startTestWrit(
      {
        webhooks: [{ url_file: join(dir, "url"), secret_file: join(dir, "secret") }],
        notifications: { retry: { initial_ms: 2, max_ms: 20 } },
      },
      { logger },
    );
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await receiver.waitFor((r) => r.path === path && r.body.includes('"request.decided"'));
    const running = t;
    await expect
      .poll(async () => (await allEvents(running, { type: "notification.sent" })).length)
      .toBe(1);
    expect(lines.map((l) => l.message)).toEqual(
      expect.arrayContaining([
        "notification failed; retrying",
        "notification dropped after repeated failures",
      ]),
    );
    const logged = JSON.stringify(lines);
    const recorded = JSON.stringify(await allEvents(t, { request_id: id }));
    for (const text of [logged, recorded]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(receiver.url);
    }
  });
});
