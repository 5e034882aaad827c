import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreClient,
} from "../../src/adapters/redis-store.js";
import { createTeamsNotifier } from "../../src/notify/teams/notifier.js";
import { silentLogger } from "../../src/ports/logger.js";
import { ConsoleClient } from "../console/console-client.js";
import { tempPolicies } from "../policy/temp-policies.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  createRequest,
  keyOf,
  readRequest,
} from "../support/api.js";
import { capturingLogger } from "../support/captured-log.js";
import {
  blockAction,
  type FakeSlack,
  postInteraction,
  type SlackCall,
  startFakeSlack,
} from "../support/fake-slack.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";
import { type RecordingServer, startRecordingServer } from "../support/recording-server.js";
import {
  type RedisServer,
  redisWithPlainClientPerSuite,
  startRedisServer,
} from "../support/redis.js";
import {
  slackSettings,
  TEST_SLACK_BOT_TOKEN,
  TEST_SLACK_CHANNEL,
  TEST_SLACK_SIGNING_SECRET,
  TEST_SLACK_TEAM,
} from "../support/slack-app.js";

// Escalation of requests nobody answers: still pending 600 s after it was
// asked, the export is brought to the security group as well. The sweep is
// run by hand and time moves only on the manual clock.

const EXPORT_POLICY = `
@id("customers-export")
@approvers("data-owners")
@quorum("2")
@approval_timeout("900")
@escalate_after("600")
@escalate_to("security")
permit (principal, action == Action::"db:export", resource == Resource::"db://prod/customers");
`;

const SECURITY_CHANNEL = "C0SECURITY";

let policies: Awaited<ReturnType<typeof tempPolicies>>;

beforeAll(async () => {
  policies = await tempPolicies({ "export.cedar": EXPORT_POLICY });
});

afterAll(async () => {
  await policies?.remove();
});

const about = (id: string) => (c: SlackCall) => JSON.stringify(c.args).includes(id);
const blocksOf = (c: SlackCall) => JSON.stringify(c.args.blocks);

describe("escalation to Slack, on the embedded store", () => {
  let slack: FakeSlack;
  let t: TestWrit;

  async function start(routing: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    t = await startTestWrit({
      slack: slackSettings(slack, { routing }),
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
      policies: { dir: policies.dir, watch: false },
      ...extra,
    });
  }

  beforeEach(async () => {
    slack = await startFakeSlack(TEST_SLACK_BOT_TOKEN);
  });

  afterEach(async () => {
    await t?.close();
    await slack.close();
  });

  const postsTo = (channel: string, id: string) =>
    slack.accepted("chat.postMessage").filter((c) => c.args.channel === channel && about(id)(c));

  it("prompts the escalation group's channel once the request has waited, and not before", async () => {
    await start({ security: { channel: SECURITY_CHANNEL } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === TEST_SLACK_CHANNEL);
    await approveAs(t, "bob", id);

    t.clock.advance(599);
    expect(await t.writ.broker.escalateDue()).toBe(0);
    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toEqual([]);
    expect((await readRequest(t, id)) as unknown as Record<string, unknown>).not.toHaveProperty(
      "escalated_at",
    );

    t.clock.advance(1);
    expect(await t.writ.broker.escalateDue()).toBe(1);
    const prompt = await slack.waitFor(
      "chat.postMessage",
      (c) => c.args.channel === SECURITY_CHANNEL && about(id)(c),
    );
    const blocks = blocksOf(prompt);
    expect(blocks).toContain("Approval needed, escalated: db:export");
    expect(blocks).toContain("Escalated to security after 10 minutes without a decision");
    // The escalation group is asked with the same buttons; the approval so far shows.
    expect(blocks).toContain("writ_approve");
    expect(blocks).toContain("1/2 from data-owners");
    expect(String(prompt.args.text)).toMatch(/^Approval needed, escalated: /);

    // Recorded exactly once, and shown by the API.
    const escalated = await allEvents(t, { request_id: id, type: "request.escalated" });
    expect(escalated).toHaveLength(1);
    expect(escalated[0]?.actor).toEqual({ kind: "system", id: "writ" });
    expect(escalated[0]?.data).toEqual({
      groups: ["security"],
      after_seconds: 600,
      waited_seconds: 600,
      approvals: 1,
    });
    const view = (await readRequest(t, id)) as unknown as Record<string, unknown>;
    expect(view.escalated_at).toBe(new Date(t.clock.now()).toISOString());
    expect(view.status).toBe("pending");
    expect((view.decision as Record<string, unknown>).escalation).toEqual({
      after_seconds: 600,
      groups: ["security"],
    });
    t.clock.advance(60);
    expect(await t.writ.broker.escalateDue()).toBe(0);

    // The first prompt is updated in place, never posted again.
    await slack.waitFor(
      "chat.update",
      (c) => c.args.channel === TEST_SLACK_CHANNEL && blocksOf(c).includes("Escalated to security"),
    );
    expect(postsTo(TEST_SLACK_CHANNEL, id)).toHaveLength(1);

    // Escalation notifies: carol (data-owners and security) approves as a data
    // owner; the escalation channel's copy follows the outcome.
    await approveAs(t, "carol", id);
    await slack.waitFor(
      "chat.update",
      (c) => c.args.channel === SECURITY_CHANNEL && blocksOf(c).includes("Approved"),
    );
    expect(postsTo(SECURITY_CHANNEL, id)).toHaveLength(1);

    const dana = new ConsoleClient(t);
    expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
    const html = await (await dana.get(`/console/requests/${id}`)).text();
    expect(html).toContain("Escalated to security");
  });

  it("posts the escalation copies with the request's timeline, as the first copies show it", async () => {
    const masking = await tempPolicies({
      "export.cedar": EXPORT_POLICY.replace(
        '@escalate_to("security")',
        '@escalate_to("security")\n@sensitive("customer_email")',
      ),
    });
    try {
      await start(
        { security: { channel: SECURITY_CHANNEL } },
        { policies: { dir: masking.dir, watch: false } },
      );
      const { id } = await createRequest(t, {
        ...CUSTOMERS_EXPORT,
        context: { customer_email: "jane@example.com" },
      });
      await slack.waitFor("chat.postMessage", (c) => c.args.channel === TEST_SLACK_CHANNEL);
      // bob looks at the masked field before anyone decides: the timeline says so.
      await postInteraction(
        t.writ,
        t.clock.now(),
        blockAction({ user: "U0WRITBOB", actionId: "writ_reveal", requestId: id }),
        { secret: TEST_SLACK_SIGNING_SECRET },
      );
      await slack.waitFor(
        "chat.update",
        (c) => about(id)(c) && blocksOf(c).includes("bob revealed the masked fields"),
      );

      t.clock.advance(600);
      expect(await t.writ.broker.escalateDue()).toBe(1);
      const copy = await slack.waitFor(
        "chat.postMessage",
        (c) => c.args.channel === SECURITY_CHANNEL && about(id)(c),
      );
      const first = await slack.waitFor(
        "chat.update",
        (c) =>
          c.args.channel === TEST_SLACK_CHANNEL && blocksOf(c).includes("Escalated to security"),
      );
      expect(blocksOf(copy)).toContain("bob revealed the masked fields");
      expect(copy.args.blocks).toEqual(first.args.blocks);
      // The value itself went to bob alone, never onto a copy.
      expect(JSON.stringify(slack.accepted("chat.postMessage"))).not.toContain("jane@example.com");
    } finally {
      await masking.remove();
    }
  });

  it("does not direct-message an escalation group member who has approved already", async () => {
    // sam joins carol in the security group.
    const sam = {
      id: "sam",
      key_sha256: hashKey(generateKey("reviewer")),
      groups: ["security"],
      slack_user_id: "U0WRITSAM",
    };
    await start({ security: { dm: true } }, { identities: { reviewers: [sam] } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === TEST_SLACK_CHANNEL);
    // carol, in data-owners and security, approves as a data owner.
    await approveAs(t, "carol", id);
    t.clock.advance(600);
    expect(await t.writ.broker.escalateDue()).toBe(1);
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === "U0WRITSAM" && about(id)(c));
    // Events are delivered one after another: once the next one is, the
    // escalation's delivery is over.
    await approveAs(t, "bob", id);
    await slack.waitFor(
      "chat.update",
      (c) => c.args.channel === TEST_SLACK_CHANNEL && blocksOf(c).includes("Approved"),
    );
    expect(postsTo("U0WRITSAM", id)).toHaveLength(1);
    expect(postsTo("U0WRITCAROL", id)).toEqual([]);
  });

  it("escalates nothing once the request is decided", async () => {
    await start({ security: { channel: SECURITY_CHANNEL } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    t.clock.advance(601);
    expect(await t.writ.broker.escalateDue()).toBe(0);
    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toEqual([]);
    // What the worker still delivers for this request (the approval) reaches the
    // first channel only.
    await slack.waitFor(
      "chat.update",
      (c) => c.args.channel === TEST_SLACK_CHANNEL && blocksOf(c).includes("Approved"),
    );
    expect(postsTo(SECURITY_CHANNEL, id)).toEqual([]);
  });

  it("expires rather than escalates a request past its approval deadline", async () => {
    await start({ security: { channel: SECURITY_CHANNEL } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(900);
    expect(await t.writ.broker.escalateDue()).toBe(0);
    expect((await readRequest(t, id)).status).toBe("expired");
    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toEqual([]);
  });

  it("logs an error when the escalation groups reach nobody in Slack", async () => {
    // No default channel, and nobody writ knows is in the escalation group:
    // the copies would say the on-call group was told when nobody was.
    const unrouted = await tempPolicies({
      "export.cedar": EXPORT_POLICY.replace('@escalate_to("security")', '@escalate_to("on-call")'),
    });
    const { logger, lines } = capturingLogger();
    try {
      t = await startTestWrit(
        {
          slack: {
            signing_secret: TEST_SLACK_SIGNING_SECRET,
            bot_token: TEST_SLACK_BOT_TOKEN,
            api_url: slack.apiUrl,
            team_id: TEST_SLACK_TEAM,
            routing: { "data-owners": { dm: true } },
          },
          notifications: { retry: { initial_ms: 2, max_ms: 40 } },
          policies: { dir: unrouted.dir, watch: false },
        },
        { logger },
      );
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await expect.poll(() => slack.accepted("chat.postMessage").filter(about(id)).length).toBe(2);
      await escalateUpdatingBothCopies(id, "Escalated to on-call");
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: "error",
          message: "the slack escalation reached no destination",
          fields: expect.objectContaining({ request_id: id }),
        }),
      );
    } finally {
      await unrouted.remove();
    }
  });

  /**
   * Ten minutes on, the sweep escalates the request; both first copies are
   * updated to say so (`label`), and no new message is posted.
   */
  async function escalateUpdatingBothCopies(id: string, label: string) {
    t.clock.advance(600);
    expect(await t.writ.broker.escalateDue()).toBe(1);
    await expect
      .poll(
        () =>
          slack.accepted("chat.update").filter((c) => about(id)(c) && blocksOf(c).includes(label))
            .length,
      )
      .toBe(2);
    expect(slack.accepted("chat.postMessage").filter(about(id))).toHaveLength(2);
  }

  it("does not prompt again a reviewer the first prompt already reached", async () => {
    // Both groups by direct message: carol, in both, was asked as a data owner.
    await start({ "data-owners": { dm: true }, security: { dm: true } });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await slack.waitFor("chat.postMessage", (c) => c.args.channel === "U0WRITCAROL");
    await expect.poll(() => slack.accepted("chat.postMessage").filter(about(id)).length).toBe(2);
    // The copies say it was escalated; nobody gets a second message.
    await escalateUpdatingBothCopies(id, "Escalated to security");
  });
});

describe("escalation to Teams and webhooks", () => {
  let receiver: RecordingServer;
  let dir: string;
  let t: TestWrit;

  beforeEach(async () => {
    receiver = await startRecordingServer();
    dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
    await writeFile(join(dir, "secret"), `${"ab".repeat(32)}\n`, { mode: 0o600 });
    t = await startTestWrit({
      teams: {
        webhook_url: `${receiver.url}/teams`,
        console_url: "https://writ.example.com/console/",
      },
      webhooks: [
        {
          url: `${receiver.url}/escalations`,
          secret_file: join(dir, "secret"),
          events: ["request.escalated"],
        },
      ],
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
      policies: { dir: policies.dir, watch: false },
    });
  });

  afterEach(async () => {
    await t?.close();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("posts a card saying it was escalated, and forwards the event with the request", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await receiver.waitFor((r) => r.path === "/teams" && r.body.includes(id));
    t.clock.advance(600);
    expect(await t.writ.broker.escalateDue()).toBe(1);

    const card = await receiver.waitFor((r) => r.path === "/teams" && r.body.includes("escalated"));
    expect(card.body).toContain("Approval needed, escalated: db:export");
    expect(card.body).toContain("Escalated to security after 10 minutes without a decision");

    const hook = await receiver.waitFor((r) => r.path === "/escalations");
    expect(hook.headers["x-writ-event-type"]).toBe("request.escalated");
    const payload = JSON.parse(hook.body);
    expect(payload).toMatchObject({
      type: "request.escalated",
      request_id: id,
      data: { groups: ["security"], after_seconds: 600, waited_seconds: 600 },
      request: {
        status: "pending",
        escalated_at: new Date(t.clock.now()).toISOString(),
        escalated_to: ["security"],
      },
    });
    expect(receiver.requests.filter((r) => r.path === "/escalations")).toHaveLength(1);
  });
});

describe("an escalation delivered late to Teams", () => {
  let receiver: RecordingServer;
  let t: TestWrit;

  afterEach(async () => {
    await t?.close();
    await receiver?.close();
  });

  it("posts no card once the approval deadline has passed, before the sweep recorded the expiry", async () => {
    receiver = await startRecordingServer();
    const store = createMemoryStore();
    t = await startTestWrit({ policies: { dir: policies.dir, watch: false } }, { store });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(600);
    expect(await t.writ.broker.escalateDue()).toBe(1);
    const [escalated] = (await store.events({ limit: 100 })).filter(
      (e) => e.requestId === id && e.type === "request.escalated",
    );
    if (escalated === undefined) throw new Error("no request.escalated event");
    // Teams was unreachable until the request's approval deadline (900 s) passed.
    t.clock.advance(300);
    const teams = createTeamsNotifier({
      webhookUrl: `${receiver.url}/late`,
      consoleUrl: "https://writ.example.com",
      store,
      state: createMemoryNotificationState({ clock: t.clock }),
      clock: t.clock,
      message: {},
    });
    await teams.deliver(escalated, new AbortController().signal);
    // Nobody is left to ask: the expiry gets its own card when it is recorded.
    expect(receiver.requests.filter((r) => r.path === "/late")).toEqual([]);
  });
});

describe("escalation with two writs on one Redis", () => {
  let server: RedisServer;
  const clients: RedisStoreClient[] = [];
  const writs: TestWrit[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    for (const w of writs) await w.close();
    for (const c of clients) await c.close();
    await server?.dispose();
  });

  it("records the escalation exactly once when both sweep at the same moment", async () => {
    const clock = new ManualClock();
    for (let i = 0; i < 2; i++) {
      const client = await connectRedis({ url: server.url, logger: silentLogger });
      clients.push(client);
      const store = createRedisStore({ client, prefix: "escalation", logger: silentLogger });
      writs.push(
        await startTestWrit({ policies: { dir: policies.dir, watch: false } }, { store, clock }),
      );
    }
    const [a, b] = writs as [TestWrit, TestWrit];
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) {
      ids.push((await createRequest(a, CUSTOMERS_EXPORT, keyOf(a, "report-agent"))).id);
    }
    clock.advance(599);
    expect(await Promise.all([a.writ.broker.escalateDue(), b.writ.broker.escalateDue()])).toEqual([
      0, 0,
    ]);
    clock.advance(1);
    // Small batches, so that the two sweeps meet on the same requests. A sweep
    // that finds a whole batch done by the other stops; the next one goes on.
    const counts = await Promise.all([a.writ.broker.escalateDue(3), b.writ.broker.escalateDue(3)]);
    const rest = await a.writ.broker.escalateDue(3);
    expect(counts[0] + counts[1] + rest).toBe(ids.length);
    const recorded = await allEvents(b, { type: "request.escalated" });
    expect(recorded.map((e) => e.request_id).sort()).toEqual([...ids].sort());
    expect(await Promise.all([a.writ.broker.escalateDue(), b.writ.broker.escalateDue()])).toEqual([
      0, 0,
    ]);
  });
});

describe("escalation past stale entries in the Redis escalation index", () => {
  const redis = redisWithPlainClientPerSuite();
  let t: TestWrit;
  let prefix: string;

  beforeEach(async () => {
    prefix = `esc${randomBytes(6).toString("hex")}`;
    const store = createRedisStore({ client: redis.client, prefix, logger: silentLogger });
    t = await startTestWrit({ policies: { dir: policies.dir, watch: false } }, { store });
  });

  afterEach(async () => {
    await t?.close();
  });

  const escalationIndex = () => `{${prefix}}:escalate`;

  it("escalates the requests behind a full batch of decided ones, and drops their entries", async () => {
    const decided: string[] = [];
    for (let n = 0; n < 3; n++) decided.push((await createRequest(t, CUSTOMERS_EXPORT)).id);
    const escalatesAt = t.clock.now() + 600_000;
    t.clock.advance(1);
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(598);
    // Approved just before their escalation by a replica of an earlier release,
    // which knows nothing of the escalation index and leaves their entries.
    for (const approved of decided) {
      await approveAs(t, "bob", approved);
      await approveAs(t, "carol", approved);
      await redis.raw.zAdd(escalationIndex(), { score: escalatesAt, value: approved });
    }
    t.clock.advance(2);
    // Batches of two: the first reads nothing but stale entries.
    expect(await t.writ.broker.escalateDue(2)).toBe(1);
    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toHaveLength(1);
    for (const approved of decided) {
      expect((await readRequest(t, approved)).status).toBe("approved");
      expect(await allEvents(t, { request_id: approved, type: "request.escalated" })).toEqual([]);
    }
    expect(await redis.raw.zRange(escalationIndex(), 0, -1)).toEqual([]);
  });

  it("escalates the other requests past one whose record cannot be read, and names it in the log", async () => {
    const { logger, lines } = capturingLogger();
    await t.close();
    t = await startTestWrit(
      { policies: { dir: policies.dir, watch: false } },
      { store: createRedisStore({ client: redis.client, prefix, logger }), logger },
    );
    // A record writ cannot read (a hand edit gone wrong), due before the others.
    const unreadable = "req_AAAAAAAAAAAAAAAAAAAAAA";
    await redis.raw.hSet(`{${prefix}}:req:${unreadable}`, { d: "{not json", v: "1", s: "pending" });
    await redis.raw.zAdd(escalationIndex(), { score: 1, value: unreadable });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(600);

    await expect(t.writ.broker.escalateDue()).rejects.toMatchObject({
      code: "store_unavailable",
    });

    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toHaveLength(1);
    expect(await redis.raw.zRange(escalationIndex(), 0, -1)).toEqual([unreadable]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        fields: expect.objectContaining({ request_id: unreadable, code: "store_unavailable" }),
      }),
    );
  });

  it("passes over an entry whose request no longer exists", async () => {
    await redis.raw.zAdd(escalationIndex(), { score: 1, value: "req_AAAAAAAAAAAAAAAAAAAAAA" });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    t.clock.advance(600);
    expect(await t.writ.broker.escalateDue()).toBe(1);
    expect(await allEvents(t, { request_id: id, type: "request.escalated" })).toHaveLength(1);
    expect(await redis.raw.zRange(escalationIndex(), 0, -1)).toEqual([]);
  });
});
