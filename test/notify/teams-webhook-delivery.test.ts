import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import { createTeamsNotifier } from "../../src/notify/teams/notifier.js";
import { createWebhookNotifier, webhookName } from "../../src/notify/webhook/notifier.js";
import type { RequestStore } from "../../src/ports/store.js";
import { tempPolicies } from "../policy/temp-policies.js";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectJson,
  keyOf,
} from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { capturingLogger } from "../support/captured-log.js";
import { ManualClock, startTestWrit, type TestWrit } from "../support/harness.js";

const HOOK_SECRET = "9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a3b5c7d9e";

/** How a scripted receiver answers one request; it ends the response itself. */
type Answer = (res: ServerResponse) => void;

interface Received {
  readonly path: string;
  readonly body: string;
}

/**
 * A loopback receiver answering each path from a script (then 200 "1", what a
 * Teams connector answers on success), recording what it receives.
 */
async function startScriptedReceiver() {
  const received: Received[] = [];
  const script = new Map<string, Answer[]>();
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? "/";
    received.push({ path, body: Buffer.concat(chunks).toString("utf8") });
    const answer = script.get(path)?.shift();
    if (answer !== undefined) answer(res);
    else res.writeHead(200, { "content-type": "text/plain" }).end("1");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    answerNext(path: string, ...answers: Answer[]) {
      script.set(path, [...(script.get(path) ?? []), ...answers]);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type ScriptedReceiver = Awaited<ReturnType<typeof startScriptedReceiver>>;

/** A Teams message as the webhook receives it, as far as these tests read it. */
interface TeamsMessage {
  summary: string;
  attachments: {
    content: {
      body: { type: string; text?: string; facts?: { title: string; value: string }[] }[];
      actions: { title: string; url: string }[];
    };
  }[];
}

/** The card's first fact set, by title. */
function factsOf(message: TeamsMessage | undefined): Record<string, string> {
  const set = message?.attachments[0]?.content.body.find((b) => b.type === "FactSet");
  return Object.fromEntries((set?.facts ?? []).map((f) => [f.title, f.value]));
}

let receiver: ScriptedReceiver | undefined;
let t: TestWrit | undefined;
let dir: string | undefined;

afterEach(async () => {
  await t?.close();
  await receiver?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  t = undefined;
  receiver = undefined;
  dir = undefined;
});

/** What an Office 365 connector answers when Teams throttled the card: a 200. */
const THROTTLED_AS_200 =
  "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-production-weu-azsc1-1-54,cv=sHq2Ck2eMEiZQ6Aq1Fv6yQ.0..";

describe("Teams delivery", () => {
  it("retries a card the connector refused inside a 200 answer, and records it sent only once Teams took it", async () => {
    receiver = await startScriptedReceiver();
    receiver.answerNext(
      "/teams",
      (res) => res.writeHead(200, { "content-type": "text/plain" }).end(THROTTLED_AS_200),
      // A Workflows URL accepts with 202 and no body.
      (res) => res.writeHead(202).end(),
    );
    t = await startTestWrit({
      teams: { webhook_url: `${receiver.url}/teams`, console_url: "https://writ.example.com" },
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const posts = () => (receiver?.received ?? []).filter((r) => r.path === "/teams");
    await expect.poll(() => posts().length, { timeout: 5000 }).toBe(2);
    expect(posts()[1]?.body).toBe(posts()[0]?.body);
    await expect
      .poll(async () => (await allEvents(t as TestWrit, { request_id: id })).map((e) => e.type))
      .toContain("notification.sent");
    const sent = await allEvents(t, { request_id: id, type: "notification.sent" });
    expect(sent.map((e) => e.data)).toEqual([
      { channel: "teams", target: "channel", destinations: 1 },
    ]);
  });

  it("posts to the webhook URL read from a secret file", async () => {
    receiver = await startScriptedReceiver();
    dir = await mkdtemp(join(tmpdir(), "writ-teams-"));
    await writeFile(join(dir, "url"), `${receiver.url}/teams?sig=abc\n`, { mode: 0o600 });
    t = await startTestWrit({
      teams: { webhook_url_file: join(dir, "url"), console_url: "https://writ.example.com" },
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    await createRequest(t, CUSTOMERS_EXPORT);
    await expect
      .poll(() => (receiver?.received ?? []).map((r) => r.path))
      .toEqual(["/teams?sig=abc"]);
  });

  it("posts an outcome card when the agent cancels a request awaiting approval", async () => {
    receiver = await startScriptedReceiver();
    t = await startTestWrit({
      teams: { webhook_url: `${receiver.url}/teams`, console_url: "https://writ.example.com" },
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const cards = () =>
      (receiver?.received ?? [])
        .filter((r) => r.path === "/teams")
        .map((r) => JSON.parse(r.body).attachments[0].content);
    await expect.poll(() => cards().length).toBe(1);
    const cancelled = await t.call("POST", `/v1/requests/${id}/cancel`, {
      key: t.keys["report-agent"],
    });
    expect(cancelled.status).toBe(200);
    await expect.poll(() => cards().length, { timeout: 3000 }).toBe(2);
    const outcome = cards()[1];
    expect(outcome.body[0].text).toBe("Cancelled: db:export");
    expect(outcome.actions[0].title).toBe("Open in writ");
  });
});

describe("Teams after the fact", () => {
  it("posts one card with the outcome once the review is recorded: who, when and the note, a concern marked as one", async () => {
    receiver = await startScriptedReceiver();
    const policies = await tempPolicies({ "break-glass.cedar": BREAK_GLASS_POLICY });
    try {
      const writ = await startTestWrit({
        teams: { webhook_url: `${receiver.url}/teams`, console_url: "https://writ.example.com" },
        notifications: { retry: { initial_ms: 2, max_ms: 40 } },
        policies: { dir: policies.dir, watch: false },
      });
      t = writ;
      const cards = () =>
        (receiver?.received ?? [])
          .filter((r) => r.path === "/teams")
          .map((r) => JSON.parse(r.body) as TeamsMessage);
      const { id } = await createRequest(writ, BREAK_GLASS);
      // The heads-up, then the card asking for the review once the credential is issued.
      await expect.poll(() => cards().length).toBe(1);
      await collectToken(writ, id);
      await expect.poll(() => cards().length).toBe(2);
      expect(factsOf(cards()[1])["After the fact"]).toBe(
        "To be reviewed after the fact by security",
      );

      writ.clock.advance(90);
      const note = "rows [beyond](https://evil.example) the *ticket*";
      await expectJson(
        await writ.call("POST", `/v1/requests/${id}/review-after`, {
          key: keyOf(writ, "carol"),
          body: { verdict: "concern", note },
        }),
        200,
      );
      await expect.poll(() => cards().length).toBe(3);
      const followUp = cards()[2] as TeamsMessage;
      const content = followUp.attachments[0]?.content;
      expect(content?.body[0]).toMatchObject({
        text: "Concern raised in the review after the fact: db:export",
        color: "Attention",
      });
      expect(followUp.summary).toBe(
        "Concern raised in the review after the fact: report-agent db:export",
      );
      const facts = factsOf(followUp);
      expect(facts["Reviewed after the fact"]).toBe(
        `**concern**, by carol at ${new Date(writ.clock.now()).toISOString()} (api)`,
      );
      expect(facts.Note).toBe("rows \\[beyond\\]\\(https://evil.example\\) the \\*ticket\\*");
      expect(facts).not.toHaveProperty("After the fact");
      expect(content?.actions[0]?.url).toBe(`https://writ.example.com/requests/${id}`);
    } finally {
      await policies.remove();
    }
  });
});

describe("webhook delivery", () => {
  it("neither waits for nor buffers a receiver's response body", async () => {
    receiver = await startScriptedReceiver();
    const total = 32 * 1024 * 1024;
    let pushed = 0;
    receiver.answerNext("/hook", (res) => {
      // 200 at once, then a body far larger than any acknowledgement, never finished.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const push = () => {
        while (pushed < total) {
          pushed += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", push);
            return;
          }
        }
      };
      push();
    });
    dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
    await writeFile(join(dir, "secret"), HOOK_SECRET, { mode: 0o600 });
    t = await startTestWrit({
      webhooks: [{ url: `${receiver.url}/hook`, secret_file: join(dir, "secret") }],
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    await createRequest(t, CUSTOMERS_EXPORT);
    const hooks = () => (receiver?.received ?? []).filter((r) => r.path === "/hook");
    // The next event follows at once, not after the 10 s exchange timeout.
    await expect.poll(() => hooks().length, { timeout: 4000 }).toBeGreaterThanOrEqual(2);
    const [first, second] = hooks();
    expect(JSON.parse(first?.body ?? "{}").type).toBe("request.created");
    expect(JSON.parse(second?.body ?? "{}").type).toBe("request.decided");
    // writ hung up instead of reading the body: the receiver could not push it all.
    expect(pushed).toBeLessThan(total);
  });
});

describe("a receiver that redirects", () => {
  it("is neither followed nor taken as a refusal: the event waits, in order, until the receiver takes it", async () => {
    receiver = await startScriptedReceiver();
    const moved = (res: ServerResponse) =>
      res.writeHead(307, { location: `${receiver?.url}/elsewhere` }).end();
    // A gateway redirecting to a maintenance page for a while, then the receiver back.
    receiver.answerNext("/hook", moved, moved, moved, moved);
    dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
    await writeFile(join(dir, "secret"), HOOK_SECRET, { mode: 0o600 });
    t = await startTestWrit({
      webhooks: [{ url: `${receiver.url}/hook`, secret_file: join(dir, "secret") }],
      notifications: { retry: { initial_ms: 2, max_ms: 40 } },
    });
    await createRequest(t, CUSTOMERS_EXPORT);
    const types = () =>
      (receiver?.received ?? [])
        .filter((r) => r.path === "/hook")
        .map((r) => JSON.parse(r.body).type as string);
    await expect.poll(() => types().length, { timeout: 5000 }).toBeGreaterThanOrEqual(6);
    expect(types().slice(0, 6)).toEqual([
      "request.created",
      "request.created",
      "request.created",
      "request.created",
      "request.created",
      "request.decided",
    ]);
    expect((receiver?.received ?? []).filter((r) => r.path === "/elsewhere")).toEqual([]);
  });
});

describe("a receiver asking to wait", () => {
  it("honours a Retry-After given as an HTTP date, from Teams and from a webhook", async () => {
    receiver = await startScriptedReceiver();
    const log = capturingLogger();
    const clock = new ManualClock();
    // Two minutes from now, in the date form HTTP allows besides seconds.
    const until = new Date(clock.now() + 120_000).toUTCString();
    const throttled: Answer = (res) => res.writeHead(429, { "retry-after": until }).end();
    receiver.answerNext("/teams", throttled);
    receiver.answerNext("/hook", throttled);
    dir = await mkdtemp(join(tmpdir(), "writ-hook-"));
    await writeFile(join(dir, "secret"), HOOK_SECRET, { mode: 0o600 });
    t = await startTestWrit(
      {
        teams: { webhook_url: `${receiver.url}/teams`, console_url: "https://writ.example.com" },
        webhooks: [{ url: `${receiver.url}/hook`, secret_file: join(dir, "secret") }],
        notifications: { retry: { initial_ms: 2, max_ms: 600_000 } },
      },
      { clock, logger: log.logger },
    );
    await createRequest(t, CUSTOMERS_EXPORT);
    const waits = () =>
      log.lines
        .filter((l) => l.message === "notification failed; retrying")
        .map((l) => [l.fields?.channel, l.fields?.retry_in_ms]);
    await expect.poll(() => waits().length, { timeout: 5000 }).toBe(2);
    expect(Object.fromEntries(waits())).toEqual({
      teams: 120_000,
      [webhookName(`${receiver.url}/hook`)]: 120_000,
    });
    expect(receiver.received).toHaveLength(2);
  });
});

describe("a delivery whose lease was lost", () => {
  it("sends nothing to Teams or to a webhook", async () => {
    receiver = await startScriptedReceiver();
    const store: RequestStore = createMemoryStore();
    t = await startTestWrit({}, { store });
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const [decided] = (await store.events({ limit: 100 })).filter(
      (e) => e.requestId === id && e.type === "request.decided",
    );
    if (decided === undefined) throw new Error("no request.decided event");
    const teams = createTeamsNotifier({
      webhookUrl: `${receiver.url}/teams`,
      consoleUrl: "https://writ.example.com",
      store,
      state: createMemoryNotificationState({ clock: t.clock }),
      clock: t.clock,
      message: {},
    });
    const hook = createWebhookNotifier({
      url: `${receiver.url}/hook`,
      secret: HOOK_SECRET,
      store,
      clock: t.clock,
      message: {},
    });
    // Another replica holds the lease now and delivers this event itself.
    const lost = AbortSignal.abort(new Error("the notification worker lost its lease"));
    await expect(teams.deliver(decided, lost)).rejects.toThrow("lost its lease");
    await expect(hook.deliver(decided, lost)).rejects.toThrow("lost its lease");
    expect(receiver.received).toEqual([]);
  });
});
