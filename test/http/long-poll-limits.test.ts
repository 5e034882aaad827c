import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { silentLogger } from "../../src/ports/logger.js";
import {
  approveAs,
  CUSTOMERS_EXPORT,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  type RequestBody,
} from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";

/** A long-poll in flight: its response once it answers, and a way to end it. */
interface Poll {
  readonly response: Promise<Response>;
  /** The response, once it has answered; undefined while it waits. */
  answered(): Response | undefined;
  end(): void;
}

function longPoll(t: TestWrit, path: string, key: string): Poll {
  const controller = new AbortController();
  let answer: Response | undefined;
  const response = Promise.resolve(
    t.writ.app.request(path, {
      headers: { authorization: `Bearer ${key}` },
      signal: controller.signal,
    }),
  ).then((res) => {
    answer = res;
    return res;
  });
  return { response, answered: () => answer, end: () => controller.abort() };
}

const waitFor = (id: string) => `/v1/requests/${id}?wait=30&while=pending`;

/** Starts `count` long-polls and resolves once `refused` of them have answered, with all of them. */
async function pollsWithRefusals(
  t: TestWrit,
  path: string,
  key: string,
  count: number,
  refused: number,
): Promise<Poll[]> {
  const polls = Array.from({ length: count }, () => longPoll(t, path, key));
  await expect.poll(() => polls.filter((p) => p.answered() !== undefined).length).toBe(refused);
  return polls;
}

async function expectTooManyWaits(res: Response, max: number) {
  const error = await expectError(res, 429, "too_many_waits");
  expect(res.headers.get("retry-after")).toBe("1");
  expect(error.details).toEqual({ max_waits: max, retry_after_seconds: 1 });
}

describe("long-polls per principal, on Redis", () => {
  let server: RedisServer;
  let client: RedisStoreClient;
  let t: TestWrit | undefined;

  beforeAll(async () => {
    server = await startRedisServer();
    client = await connectRedis({ url: server.url, logger: silentLogger });
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });
  afterAll(async () => {
    await client?.close();
    await server?.dispose();
  });

  it("one agent's waits over its cap are refused at once and never starve another agent's long-poll", async () => {
    const { overrides, keys } = extraIdentities({ agents: [{ id: "etl-agent", owner: "erin" }] });
    // The process's pool holds 4 request waits; each principal may hold 3 of them.
    const store = createRedisStore({
      client,
      prefix: `t${randomBytes(6).toString("hex")}`,
      maxWaiters: 4,
      logger: silentLogger,
    });
    t = await startTestWrit({ ...overrides, requests: { max_waits_per_principal: 3 } }, { store });
    const greedy = keyOf(t, "report-agent");
    const other = keys["etl-agent"] as string;
    const mine = await createRequest(t, CUSTOMERS_EXPORT, greedy);
    const theirs = await createRequest(t, CUSTOMERS_EXPORT, other);

    // Six waits at once: three wait, three are refused at once with 429.
    const polls = await pollsWithRefusals(t, waitFor(mine.id), greedy, 6, 3);
    for (const poll of polls) {
      const res = poll.answered();
      if (res !== undefined) await expectTooManyWaits(res, 3);
    }
    // A read that needs no wait is answered as usual.
    const read = await t.call("GET", `/v1/requests/${mine.id}`, { key: greedy });
    expect((await expectJson<RequestBody>(read, 200)).status).toBe("pending");

    // The other agent's long-poll waits, and answers when its request is decided.
    const theirPoll = longPoll(t, waitFor(theirs.id), other);
    await approveAs(t, "bob", theirs.id);
    await approveAs(t, "carol", theirs.id);
    expect((await expectJson<RequestBody>(await theirPoll.response, 200)).status).toBe("approved");

    // Once its waits end, the greedy agent may wait again.
    for (const poll of polls) poll.end();
    await Promise.all(polls.map((p) => p.response));
    const again = longPoll(t, waitFor(mine.id), greedy);
    await approveAs(t, "bob", mine.id);
    await approveAs(t, "carol", mine.id);
    expect((await expectJson<RequestBody>(await again.response, 200)).status).toBe("approved");
  });
});

describe("long-polls per principal", () => {
  let t: TestWrit | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("counts an auditor's event long-polls and request long-polls together, and frees a slot when one ends", async () => {
    t = await startTestWrit({ requests: { max_waits_per_principal: 1 } });
    const auditor = keyOf(t, "dana");
    const pending = await createRequest(t, CUSTOMERS_EXPORT);
    const newest = await expectJson<{ last_id: string }>(
      await t.call("GET", "/v1/events?limit=1", { key: auditor }),
      200,
    );
    const events = `/v1/events?after=${newest.last_id}&wait=30`;
    // Of two event long-polls one waits, the other is refused.
    const polls = await pollsWithRefusals(t, events, auditor, 2, 1);
    const holding = polls.find((p) => p.answered() === undefined) as Poll;
    await expectTooManyWaits(
      polls.find((p) => p.answered() !== undefined)?.answered() as Response,
      1,
    );
    // A request long-poll counts toward the same cap.
    await expectTooManyWaits(await longPoll(t, waitFor(pending.id), auditor).response, 1);
    // Another principal is not affected.
    const agentPoll = longPoll(t, waitFor(pending.id), keyOf(t, "report-agent"));

    holding.end();
    const ended = await expectJson<{ items: unknown[] }>(await holding.response, 200);
    expect(ended.items).toEqual([]);
    const next = longPoll(t, waitFor(pending.id), auditor);
    await approveAs(t, "bob", pending.id);
    await approveAs(t, "carol", pending.id);
    for (const poll of [next, agentPoll]) {
      expect((await expectJson<RequestBody>(await poll.response, 200)).status).toBe("approved");
    }
  });
});
