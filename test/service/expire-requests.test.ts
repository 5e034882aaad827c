import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WritError } from "../../src/domain/errors.js";
import type { AuditLog } from "../../src/ports/audit-log.js";
import type { Timer } from "../../src/ports/timer.js";
import { createBroker } from "../../src/service/broker.js";
import { allEvents, expectJson, keyOf, readRequest } from "../support/api.js";
import { REVOCATIONS, startReportsAwsWrit } from "../support/aws-writ.js";
import type { FakeAws } from "../support/fake-aws.js";
import { ManualClock, type TestWrit } from "../support/harness.js";

// The expiry sweep, when the audit log does not confirm the expiry in time:
// the expiry is committed all the same, so what follows it must happen too.

const TTL_SECONDS = 300;

const clock = new ManualClock();
/** Background retries move the injected clock instead of waiting. */
const timer: Timer = {
  sleep(ms) {
    clock.advance(ms / 1000);
    return Promise.resolve();
  },
};

let fake: FakeAws;
let t: TestWrit;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ fake, t, close } = await startReportsAwsWrit({ clock }));
});

afterAll(async () => {
  await close?.();
});

/**
 * The writ's audit log, except that the first append holding `type` times out,
 * as the log's follower does when its disk stalls: the log stays writable and
 * records the events late, from the stream.
 */
function stallingOnce(log: AuditLog, type: string): AuditLog {
  let stalled = false;
  return {
    append(events) {
      if (!stalled && events.some((e) => e.type === type)) {
        stalled = true;
        return Promise.reject(
          new WritError("audit_unavailable", "The audit log did not record the change in time."),
        );
      }
      return log.append(events);
    },
    writable: () => log.writable(),
    close: () => log.close(),
  };
}

async function waitForEvent(id: string, type: string) {
  const query = new URLSearchParams({ request_id: id, type, wait: "3" });
  const page = await expectJson<{ items: { type: string; data: Record<string, unknown> }[] }>(
    await t.call("GET", `/v1/events?${query}`, { key: keyOf(t, "dana") }),
    200,
  );
  return page.items[0];
}

describe("expireDue", () => {
  it("ends an expired AWS session at its source even when the log confirms the expiry late", async () => {
    const key = keyOf(t, "report-agent");
    const { id } = await expectJson<{ id: string }>(
      await t.call("POST", "/v1/requests", {
        key,
        body: { credential: "aws", action: "s3:GetObject", resource: "arn:aws:s3:::reports/q.csv" },
      }),
      201,
    );
    await expectJson(await t.call("POST", `/v1/requests/${id}/credential`, { key }), 200);
    const grant = fake.sessions.at(-1)?.tags["writ-grant"];
    expect(grant).toBeDefined();

    const broker = createBroker({
      ...t.writ.broker.deps,
      timer,
      auditLog: stallingOnce(t.writ.broker.deps.auditLog, "credential.expired"),
    });
    clock.advance(TTL_SECONDS + 1);
    await expect(broker.expireDue()).rejects.toMatchObject({ code: "audit_unavailable" });

    // The expiry is committed; nothing will ever settle this request again.
    expect((await readRequest(t, id)).status).toBe("expired");
    const revoked = await waitForEvent(id, "credential.revoked");
    expect(revoked?.data).toMatchObject({
      reason: "expired",
      at_source: "aws-iam",
      grant_id: grant,
    });
    expect(fake.rolePolicy("writ-reports", REVOCATIONS)).toContain(grant);
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types.slice(-2)).toEqual(["credential.expired", "credential.revoked"]);
  });
});
