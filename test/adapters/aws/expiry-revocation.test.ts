import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../../src/domain/principal.js";
import type { Timer } from "../../../src/ports/timer.js";
import { type Broker, createBroker } from "../../../src/service/broker.js";
import { EXPIRY_REVOCATION_RETRY_DELAYS_MS } from "../../../src/service/revoke-at-source.js";
import { allEvents, type EventBody, expectJson, keyOf } from "../../support/api.js";
import { REVOCATIONS, startReportsAwsWrit } from "../../support/aws-writ.js";
import { capturingLogger } from "../../support/captured-log.js";
import { type FakeAws, TEST_SECRET_ACCESS_KEY } from "../../support/fake-aws.js";
import { ManualClock, type TestWrit } from "../../support/harness.js";
import { within } from "../../support/wait.js";

// Ending AWS sessions at expiry, in the background: retried with backoff, and
// recorded either way (`credential.revoked` or `credential.revocation_failed`).
// Its own fake AWS and writ, so no other test's background work shares the
// fake's injected failures.

const TTL_SECONDS = 300;

interface AwsCredential {
  access_key_id: string;
  secret_access_key: string;
  session_token: string;
}

const clock = new ManualClock();
const { logger, lines: logLines } = capturingLogger();

let fake: FakeAws;
let t: TestWrit;
let agent: Agent;
let close: () => Promise<void>;

/**
 * A timer that moves the injected clock instead of waiting, and can hold a
 * wait open until writ stops (the `stopping` signal aborts).
 */
function manualTimer(options: { hold?: boolean } = {}) {
  const waits: number[] = [];
  let started: () => void = () => {};
  const firstWait = new Promise<void>((resolve) => {
    started = resolve;
  });
  const timer: Timer = {
    sleep(ms, signal) {
      waits.push(ms);
      started();
      if (!options.hold) {
        clock.advance(ms / 1000);
        return Promise.resolve();
      }
      return new Promise<void>((_, reject) => {
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
  };
  return { timer, waits, firstWait };
}

async function issue(): Promise<{ id: string; credential: AwsCredential; grant: string }> {
  const key = keyOf(t, "report-agent");
  const request = await expectJson<{ id: string }>(
    await t.call("POST", "/v1/requests", {
      key,
      body: { credential: "aws", action: "s3:GetObject", resource: "arn:aws:s3:::reports/q.csv" },
    }),
    201,
  );
  const { credential } = await expectJson<{ credential: AwsCredential }>(
    await t.call("POST", `/v1/requests/${request.id}/credential`, { key }),
    200,
  );
  const session = fake.sessions.find((s) => s.accessKeyId === credential.access_key_id);
  return { id: request.id, credential, grant: session?.tags["writ-grant"] ?? "-" };
}

/** Lets the credential's approved TTL pass and has `broker` notice it on a read. */
async function expire(broker: Broker, id: string) {
  clock.advance(TTL_SECONDS + 1);
  const request = await broker.get(agent, id);
  expect(request.status).toBe("expired");
}

/** The first `type` event of a request, long-polling (bounded) until it is recorded. */
async function nextEvent(id: string, type: string): Promise<EventBody> {
  const query = new URLSearchParams({ request_id: id, type, wait: "10" });
  const page = await expectJson<{ items: EventBody[] }>(
    await t.call("GET", `/v1/events?${query}`, { key: keyOf(t, "dana") }),
    200,
  );
  const event = page.items[0];
  if (event === undefined) throw new Error(`no ${type} for ${id}`);
  return event;
}

function iamCallsFrom(from: number, action: string) {
  return fake.calls.slice(from).filter((c) => c.action === action);
}

async function expectNothingSecret(id: string, credential: AwsCredential) {
  const text = JSON.stringify(await allEvents(t, { request_id: id })) + JSON.stringify(logLines);
  for (const secret of [
    credential.secret_access_key,
    credential.session_token,
    TEST_SECRET_ACCESS_KEY,
  ]) {
    expect(text).not.toContain(secret);
  }
}

beforeAll(async () => {
  ({ fake, t, close } = await startReportsAwsWrit({ clock, logger }));
  const found = t.writ.broker.deps.identities.agent("report-agent");
  if (found === undefined) throw new Error("no demo agent");
  agent = found;
});

afterAll(async () => {
  await close?.();
});

describe("ending an AWS session at expiry", () => {
  it("retries a failed IAM call after a backoff, then records credential.revoked", async () => {
    const { timer, waits } = manualTimer();
    const broker = createBroker({ ...t.writ.broker.deps, timer });
    const { id, credential, grant } = await issue();
    const from = fake.calls.length;
    fake.failNext("GetRolePolicy", "ServiceUnavailable", 1);
    await expire(broker, id);

    const revoked = await nextEvent(id, "credential.revoked");
    expect(waits).toEqual([EXPIRY_REVOCATION_RETRY_DELAYS_MS[0]]);
    expect(revoked).toMatchObject({
      actor: { kind: "system", id: "writ" },
      data: { reason: "expired", at_source: "aws-iam", grant_id: grant, deny: "grant" },
    });
    expect(fake.rolePolicy("writ-reports", REVOCATIONS)).toContain(grant);
    expect(iamCallsFrom(from, "GetRolePolicy").length).toBeGreaterThanOrEqual(2);
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types.slice(-2)).toEqual(["credential.expired", "credential.revoked"]);
    expect(types).not.toContain("credential.revocation_failed");
    await expectNothingSecret(id, credential);
  });

  it("gives up after three attempts: logs an error and records credential.revocation_failed", async () => {
    const { timer, waits } = manualTimer();
    const broker = createBroker({ ...t.writ.broker.deps, timer });
    const { id, credential, grant } = await issue();
    const from = fake.calls.length;
    const linesBefore = logLines.length;
    fake.failNext("GetRolePolicy", "ServiceUnavailable", 3);
    await expire(broker, id);

    const failed = await nextEvent(id, "credential.revocation_failed");
    expect(waits).toEqual([...EXPIRY_REVOCATION_RETRY_DELAYS_MS]);
    expect(iamCallsFrom(from, "GetRolePolicy")).toHaveLength(3);
    expect(iamCallsFrom(from, "PutRolePolicy")).toEqual([]);
    expect(fake.rolePolicy("writ-reports", REVOCATIONS) ?? "").not.toContain(grant);
    expect(failed).toMatchObject({
      actor: { kind: "system", id: "writ" },
      data: {
        reason: "expired",
        credential_type: "aws",
        credential_id: credential.access_key_id,
        at_source: "aws-iam",
        attempts: 3,
        error: "aws_unavailable",
        gave_up: "attempts_exhausted",
      },
    });
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types.slice(-2)).toEqual(["credential.expired", "credential.revocation_failed"]);
    expect(types).not.toContain("credential.revoked");
    const errors = logLines.slice(linesBefore).filter((line) => line.level === "error");
    expect(errors).toEqual([
      {
        level: "error",
        message: expect.stringMatching(/gave up/),
        fields: expect.objectContaining({ request_id: id, attempts: 3, error: "aws_unavailable" }),
      },
    ]);
    await expectNothingSecret(id, credential);
  });

  it("stops retrying when writ shuts down, and records why", async () => {
    const { timer, waits, firstWait } = manualTimer({ hold: true });
    const stopping = new AbortController();
    const broker = createBroker({ ...t.writ.broker.deps, timer, stopping: stopping.signal });
    const { id, credential } = await issue();
    const from = fake.calls.length;
    fake.failNext("GetRolePolicy", "Throttling", 1);
    await expire(broker, id);

    await within(firstWait, "the first retry's wait");
    stopping.abort();
    const failed = await nextEvent(id, "credential.revocation_failed");
    expect(waits).toEqual([EXPIRY_REVOCATION_RETRY_DELAYS_MS[0]]);
    expect(iamCallsFrom(from, "GetRolePolicy")).toHaveLength(1);
    expect(failed.data).toMatchObject({
      attempts: 1,
      error: "aws_throttled",
      gave_up: "shutdown",
    });
    await expectNothingSecret(id, credential);
  });

  it("records nothing when the STS session is over by the time writ expires it", async () => {
    const { timer, waits } = manualTimer();
    const broker = createBroker({ ...t.writ.broker.deps, timer });
    const { id } = await issue();
    const from = fake.calls.length;
    // Noticed late: STS ended the 900-second session more than the minute
    // allowed for AWS's clock running behind writ's before the record expired.
    clock.advance(961);
    expect((await broker.get(agent, id)).status).toBe("expired");
    // The revoker finds the session over before it calls IAM at all.
    expect(iamCallsFrom(from, "GetRolePolicy")).toEqual([]);
    expect(waits).toEqual([]);
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types).not.toContain("credential.revoked");
    expect(types).not.toContain("credential.revocation_failed");
  });
});
