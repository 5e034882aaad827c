import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreConnection,
} from "../../../src/adapters/redis-store.js";
import { silentLogger } from "../../../src/ports/logger.js";
import { tempPolicies } from "../../policy/temp-policies.js";
import { allEvents, type EventBody, expectJson, keyOf } from "../../support/api.js";
import { policyDocumentOf } from "../../support/aws-policy.js";
import { capturingLogger } from "../../support/captured-log.js";
import { type FakeAws, startFakeAws, TEST_REGION } from "../../support/fake-aws.js";
import { ManualClock, startTestWrit, type TestWrit } from "../../support/harness.js";
import { type RedisServer, startRedisServer } from "../../support/redis.js";
import { waitFor } from "../../support/wait.js";

// A collect mints first and commits after. An STS session minted by a collect
// that then loses the race, or whose commit fails, is never handed out, yet it
// lives at AWS until its end: writ denies its grant at the source and records
// that. Concurrent collects on one replica take turns, so only one mints.

const ACCOUNT = "111122223333";
const ROLE = "writ-reports";
const REVOCATIONS = "writ-revocations";
const POLICIES = `
@id("reports-read")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::reports/*" };
`;
const AWS_CONFIG = {
  region: TEST_REGION,
  roles: [
    {
      resource_pattern: "arn:aws:s3:::reports/*",
      role_arn: `arn:aws:iam::${ACCOUNT}:role/${ROLE}`,
    },
  ],
};

let fake: FakeAws;
let redis: RedisServer;
let client: RedisStoreConnection;
let removePolicies: () => Promise<void>;
let policiesDir = "";
const clock = new ManualClock();
const { logger, lines: logLines } = capturingLogger();
const writs: TestWrit[] = [];

beforeAll(async () => {
  fake = await startFakeAws({ now: () => clock.now() });
  const policies = await tempPolicies({ "aws.cedar": POLICIES });
  removePolicies = policies.remove;
  policiesDir = policies.dir;
  redis = await startRedisServer();
  client = await connectRedis({ url: redis.url, logger: silentLogger });
});

afterEach(async () => {
  for (const t of writs.splice(0)) await t.close();
});

afterAll(async () => {
  await client?.close();
  await redis?.dispose();
  await fake?.close();
  await removePolicies?.();
});

/** `count` replicas on one Redis store (one key prefix), each with its own log. */
async function replicas(count: number, operationTimeoutMs?: number): Promise<TestWrit[]> {
  const prefix = `t${randomBytes(6).toString("hex")}`;
  const started: TestWrit[] = [];
  for (let i = 0; i < count; i++) {
    const store = createRedisStore({
      client,
      prefix,
      logger: silentLogger,
      ...(operationTimeoutMs !== undefined ? { operationTimeoutMs } : {}),
    });
    const t = await startTestWrit(
      { aws: AWS_CONFIG, policies: { dir: policiesDir, watch: false } },
      { clock, logger, store, awsClients: fake.clients({ maxAttempts: 1 }) },
    );
    writs.push(t);
    started.push(t);
  }
  return started;
}

async function ask(t: TestWrit, object: string): Promise<string> {
  const res = await t.call("POST", "/v1/requests", {
    key: keyOf(t, "report-agent"),
    body: {
      credential: "aws",
      action: "s3:GetObject",
      resource: `arn:aws:s3:::reports/${object}`,
    },
  });
  return (await expectJson<{ id: string }>(res, 201)).id;
}

const collect = (t: TestWrit, id: string) =>
  t.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(t, "report-agent") });

const sessionNameOf = (id: string) => `writ-${id.slice(4)}`;
const sessionsOf = (id: string) => fake.sessions.filter((s) => s.sessionName === sessionNameOf(id));
const deniedGrants = (): string[] => {
  const document = fake.rolePolicy(ROLE, REVOCATIONS);
  if (document === undefined) return [];
  return policyDocumentOf(document).Statement.flatMap((s) => {
    const condition = s.Condition as { StringEquals?: Record<string, unknown> } | undefined;
    const listed = condition?.StringEquals?.["aws:PrincipalTag/writ-grant"];
    return Array.isArray(listed) ? (listed as string[]) : [];
  });
};

async function eventsOf(t: TestWrit, id: string, type: string, count: number) {
  let found: EventBody[] = [];
  await waitFor(`${count} ${type}`, async () => {
    found = (await allEvents(t, { request_id: id })).filter((e) => e.type === type);
    return found.length >= count;
  });
  return found;
}

describe("sessions minted and never handed out", () => {
  it("concurrent collects on one replica mint one session", async () => {
    const [a] = (await replicas(1)) as [TestWrit];
    const id = await ask(a, "turns.csv");
    const answers = await Promise.all(Array.from({ length: 25 }, () => collect(a, id)));
    const statuses = answers.map((res) => res.status).sort();
    expect(statuses).toEqual([200, ...Array<number>(24).fill(410)]);
    expect(sessionsOf(id)).toHaveLength(1);
    const granted = sessionsOf(id)[0]?.tags["writ-grant"] ?? "-";
    expect(deniedGrants()).not.toContain(granted);
  });

  it("the session of a replica that lost the race is denied at the source, and recorded", async () => {
    const [a, b] = (await replicas(2)) as [TestWrit, TestWrit];
    const id = await ask(a, "race.csv");
    const from = fake.calls.length;
    const release = fake.hold("AssumeRole");
    const answers = [collect(a, id), collect(b, id)];
    // Both replicas read the request approved and asked STS before either committed.
    await waitFor(
      "both replicas' AssumeRole",
      async () => fake.calls.slice(from).filter((c) => c.action === "AssumeRole").length === 2,
    );
    release();
    const [first, second] = (await Promise.all(answers)) as [Response, Response];
    expect([first.status, second.status].sort()).toEqual([200, 410]);
    const won = first.status === 200 ? first : second;
    const handedOut = (await expectJson<{ credential: { access_key_id: string } }>(won, 200))
      .credential.access_key_id;
    const sessions = sessionsOf(id);
    expect(sessions).toHaveLength(2);
    const winner = sessions.find((s) => s.accessKeyId === handedOut);
    const loser = sessions.find((s) => s.accessKeyId !== handedOut);
    const [revoked] = await eventsOf(a, id, "credential.revoked", 1);
    expect(deniedGrants()).toContain(loser?.tags["writ-grant"]);
    expect(deniedGrants()).not.toContain(winner?.tags["writ-grant"]);
    expect(revoked).toMatchObject({
      actor: { kind: "system", id: "writ" },
      data: {
        cause: "discarded",
        reason: "discarded",
        at_source: "aws-iam",
        credential_type: "aws",
        credential_id: loser?.accessKeyId,
        grant_id: loser?.tags["writ-grant"],
        deny: "grant",
      },
    });
    // Only the winner's credential is recorded as issued, and the request stays issued.
    const issued = (await allEvents(a, { request_id: id })).filter(
      (e) => e.type === "credential.issued",
    );
    expect(issued.map((e) => e.data.credential_id)).toEqual([handedOut]);
    const status = await a.call("GET", `/v1/requests/${id}`, { key: keyOf(a, "report-agent") });
    expect((await expectJson<{ status: string }>(status, 200)).status).toBe("issued");
    const text = JSON.stringify(await allEvents(a, { request_id: id })) + JSON.stringify(logLines);
    for (const session of sessions) {
      expect(text).not.toContain(session.secretAccessKey);
      expect(text).not.toContain(session.sessionToken);
    }
  });

  it("a session whose commit got no answer is denied at the source; the caller gets 503", async () => {
    const [a] = (await replicas(1, 500)) as [TestWrit];
    const id = await ask(a, "lost-reply.csv");
    const from = fake.calls.length;
    const release = fake.hold("AssumeRole");
    const answer = collect(a, id);
    await fake.waitForCall((c) => c.action === "AssumeRole", { from });
    // Redis stops answering before the commit is sent: the commit runs past its deadline.
    redis.freeze();
    try {
      release();
      const res = await answer;
      expect(res.status).toBe(503);
      const [session] = sessionsOf(id);
      // The deny goes to IAM at once, while Redis still answers nothing.
      await waitFor("the deny", async () =>
        deniedGrants().includes(session?.tags["writ-grant"] ?? "-"),
      );
    } finally {
      redis.thaw();
    }
    const text = JSON.stringify(await allEvents(a, { request_id: id })) + JSON.stringify(logLines);
    for (const session of sessionsOf(id)) {
      expect(text).not.toContain(session.secretAccessKey);
      expect(text).not.toContain(session.sessionToken);
    }
  });
});
