import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  createRequest,
  type ErrorBody,
  issuedToken,
  keyOf,
  NO_REFUSAL_LIMIT,
  type RequestBody,
  S3_READ,
} from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/** Status codes and error codes of a batch of responses, counted. */
async function tally(responses: readonly Response[]) {
  const statuses = new Map<number, number>();
  const codes = new Map<string, number>();
  for (const res of responses) {
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 400) {
      const { error } = (await res.json()) as ErrorBody;
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    } else {
      await res.body?.cancel();
    }
  }
  return { statuses: Object.fromEntries(statuses), codes: Object.fromEntries(codes) };
}

describe("every transition happens at most once, whatever the concurrency", () => {
  let t: TestWrit;
  beforeEach(async () => {
    // dave is a fourth data-owner, so that a deny can race the approval that completes a quorum.
    const { overrides, keys } = extraIdentities({
      reviewers: [{ id: "dave", groups: ["data-owners"] }],
    });
    t = await startTestWrit({ ...overrides, ...NO_REFUSAL_LIMIT });
    Object.assign(t.keys, keys);
  });
  afterEach(async () => {
    await t.close();
  });

  it("1,000 concurrent consumes of one token: one 200, 999 409s, each recorded once", async () => {
    const { id, token } = await issuedToken(t);
    const server = keyOf(t, "billing-api");
    // Every call starts before any is awaited.
    const calls = Array.from({ length: 1000 }, () =>
      t.call("POST", "/v1/tokens/consume", { key: server, body: { token } }),
    );
    const { statuses, codes } = await tally(await Promise.all(calls));
    expect(statuses).toEqual({ 200: 1, 409: 999 });
    expect(codes).toEqual({ token_replayed: 999 });

    const events = await allEvents(t, { request_id: id }, 300);
    const count = (type: string) => events.filter((e) => e.type === type).length;
    expect(count("token.used")).toBe(1);
    expect(count("token.replay_blocked")).toBe(999);
    // The use comes before every blocked replay, and ids strictly increase.
    expect(events.findIndex((e) => e.type === "token.used")).toBeLessThan(
      events.findIndex((e) => e.type === "token.replay_blocked"),
    );
    const ids = events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    // The type filter sees the same.
    expect((await allEvents(t, { type: "token.replay_blocked" })).length).toBe(999);
    expect((await allEvents(t, { type: "token.used" })).length).toBe(1);
  });

  it("100 concurrent collects of one approved request: one credential, one record", async () => {
    const { id } = await createRequest(t, S3_READ);
    const agent = keyOf(t, "report-agent");
    const calls = Array.from({ length: 100 }, () =>
      t.call("POST", `/v1/requests/${id}/credential`, { key: agent }),
    );
    const responses = await Promise.all(calls);
    const winners = responses.filter((r) => r.status === 200);
    expect(winners).toHaveLength(1);
    const { credential } = (await (winners[0] as Response).json()) as {
      credential: { token: string };
    };
    const { statuses, codes } = await tally(responses.filter((r) => r.status !== 200));
    expect(statuses).toEqual({ 410: 99 });
    expect(codes).toEqual({ credential_already_issued: 99 });

    const issued = await allEvents(t, { type: "credential.issued" });
    expect(issued).toHaveLength(1);
    expect(issued[0]?.request_id).toBe(id);
    // The one token handed out is the one recorded, and it works.
    const jti = JSON.parse(
      Buffer.from(credential.token.split(".")[1] as string, "base64url").toString("utf8"),
    ).jti;
    expect(issued[0]?.data.credential_id).toBe(jti);
    const used = await t.call("POST", "/v1/tokens/consume", {
      key: keyOf(t, "billing-api"),
      body: { token: credential.token },
    });
    expect(used.status).toBe(200);
  });

  it("concurrent approvals by bob and carol approve the request once", async () => {
    for (let round = 0; round < 10; round++) {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const [first, second] = round % 2 === 0 ? ["bob", "carol"] : ["carol", "bob"];
      const responses = await Promise.all([
        t.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(t, first), body: {} }),
        t.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(t, second), body: {} }),
      ]);
      const bodies = (await Promise.all(responses.map((r) => r.json()))) as RequestBody[];
      expect(responses.map((r) => r.status)).toEqual([200, 200]);
      expect(bodies.map((b) => b.status).sort()).toEqual(["approved", "pending"]);

      const events = await allEvents(t, { request_id: id });
      expect(events.filter((e) => e.type === "approval.granted")).toHaveLength(2);
      const approved = events.filter((e) => e.type === "request.approved");
      expect(approved).toHaveLength(1);
      expect(approved[0]?.data.approvers).toEqual(expect.arrayContaining(["bob", "carol"]));
      expect(approved[0]?.data.approvers).toHaveLength(2);
    }
  });

  it("an approval racing a deny: exactly one outcome, and the events agree", async () => {
    const seen = new Set<string>();
    for (let round = 0; round < 10; round++) {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      await approveAs(t, "bob", id);
      const approve = () =>
        t.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(t, "carol"), body: {} });
      const deny = () =>
        t.call("POST", `/v1/requests/${id}/deny`, {
          key: keyOf(t, "dave"),
          body: { reason: "no" },
        });
      const [approval, denial] =
        round % 2 === 0
          ? await Promise.all([approve(), deny()])
          : await Promise.all([deny(), approve()]).then(([d, a]) => [a, d] as const);

      const outcome = approval.status === 200 ? "approved" : "denied";
      seen.add(outcome);
      const loser = outcome === "approved" ? denial : approval;
      expect((outcome === "approved" ? denial : approval).status).toBe(409);
      expect(((await loser.json()) as ErrorBody).error.code).toBe("request_not_pending");
      expect((outcome === "approved" ? approval : denial).status).toBe(200);

      const current = (await (
        await t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, "dana") })
      ).json()) as RequestBody;
      expect(current.status).toBe(outcome);
      const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
      const count = (type: string) => types.filter((x) => x === type).length;
      if (outcome === "approved") {
        expect([count("request.approved"), count("request.denied")]).toEqual([1, 0]);
        expect([count("approval.granted"), count("approval.denied")]).toEqual([2, 0]);
      } else {
        expect([count("request.approved"), count("request.denied")]).toEqual([0, 1]);
        expect([count("approval.granted"), count("approval.denied")]).toEqual([1, 1]);
      }
    }
    // Starting order decides in-process; both outcomes were exercised.
    expect(seen).toEqual(new Set(["approved", "denied"]));
  });

  it("a cancel racing a collect: the agent either gets the credential or a cancelled request", async () => {
    for (let round = 0; round < 10; round++) {
      const { id } = await createRequest(t, S3_READ);
      const agent = keyOf(t, "report-agent");
      const collect = () => t.call("POST", `/v1/requests/${id}/credential`, { key: agent });
      const cancel = () => t.call("POST", `/v1/requests/${id}/cancel`, { key: agent });
      const [collected, cancelled] =
        round % 2 === 0
          ? await Promise.all([collect(), cancel()])
          : await Promise.all([cancel(), collect()]).then(([c, k]) => [k, c] as const);
      const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
      if (collected.status === 200) {
        expect(cancelled.status).toBe(409);
        expect(types).toContain("credential.issued");
        expect(types).not.toContain("request.cancelled");
      } else {
        expect(collected.status).toBe(410);
        expect(cancelled.status).toBe(200);
        expect(types).toContain("request.cancelled");
        expect(types).not.toContain("credential.issued");
      }
    }
  });
});
