import { afterEach, describe, expect, it } from "vitest";
import { createMemoryNotificationState } from "../../src/adapters/notification-state-memory.js";
import { isWritError } from "../../src/domain/errors.js";
import { recordNotificationSent } from "../../src/service/record-notification.js";
import { allEvents, CUSTOMERS_EXPORT, createRequest } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit | undefined;

afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe("recording notification.sent", () => {
  it("records once when two replicas record the same prompt at the same time", async () => {
    t = await startTestWrit();
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const deps = t.writ.broker.deps;
    // The state the replicas share (Redis in production).
    const state = createMemoryNotificationState({ clock: t.clock });
    const delivery = {
      requestId: id,
      channel: "slack",
      target: "dm",
      destinations: 2,
    } as const;
    const record = (holder: string) => recordNotificationSent(deps, delivery, { state, holder });

    const results = await Promise.allSettled([record("replica-a"), record("replica-b")]);
    const refused = results.filter((r) => r.status === "rejected");
    // The replica that lost the claim is told to retry (its worker does) …
    expect(refused).toHaveLength(1);
    const reason = (refused[0] as PromiseRejectedResult).reason;
    expect(isWritError(reason) && reason.code).toBe("conflict");
    // … and its retry finds the record written.
    await record("replica-b");
    await record("replica-a");
    const sent = await allEvents(t, { request_id: id, type: "notification.sent" });
    expect(sent.map((e) => e.data)).toEqual([{ channel: "slack", target: "dm", destinations: 2 }]);
  });
});
