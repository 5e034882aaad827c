import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempPolicies } from "../policy/temp-policies.js";
import {
  allEvents,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  type RequestBody,
} from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

interface AfterReviewBody extends RequestBody {
  decision: RequestBody["decision"] & { notify?: string[] };
  review_after?: {
    groups: string[];
    review?: { reviewer: string; verdict: string; note?: string; channel: string; at: string };
  };
}

describe("POST /v1/requests/{id}/review-after", () => {
  let t: TestWrit;
  let removePolicies: () => Promise<void>;

  beforeAll(async () => {
    const policies = await tempPolicies({ "break-glass.cedar": BREAK_GLASS_POLICY });
    removePolicies = policies.remove;
    t = await startTestWrit({ policies: { dir: policies.dir, watch: false } });
  });
  afterAll(async () => {
    await t.close();
    await removePolicies();
  });

  const reviewAfter = (id: string, who: string | undefined, body: unknown) =>
    t.call("POST", `/v1/requests/${id}/review-after`, {
      ...(who !== undefined ? { key: keyOf(t, who) } : {}),
      body,
    });

  const awaiting = async (who = "dana") =>
    (
      await expectJson<{ items: AfterReviewBody[] }>(
        await t.call("GET", "/v1/requests?awaiting=review_after", { key: keyOf(t, who) }),
        200,
      )
    ).items.map((r) => r.id);

  it("allows at once, names the groups, and is reviewable only once a credential is issued", async () => {
    const created = (await createRequest(t, BREAK_GLASS)) as AfterReviewBody;
    expect(created.status).toBe("approved");
    expect(created.decision.notify).toEqual(["security"]);
    expect(created.review_after).toEqual({ groups: ["security"] });
    const decided = (await allEvents(t, { request_id: created.id })).find(
      (e) => e.type === "request.decided",
    );
    expect(decided?.data).toMatchObject({ notify: ["security"], review_after: ["security"] });

    // Nothing was issued yet: nothing to look back at, and nothing listed.
    await expectError(
      await reviewAfter(created.id, "carol", { verdict: "ok" }),
      409,
      "not_reviewable_after",
    );
    expect(await awaiting()).not.toContain(created.id);

    await collectToken(t, created.id);
    expect(await awaiting()).toContain(created.id);
    expect(await awaiting("carol")).toContain(created.id);
    const [issued] = await allEvents(t, { request_id: created.id, type: "credential.issued" });
    expect(issued?.data.review_after).toEqual(["security"]);

    const reviewed = await expectJson<AfterReviewBody>(
      await reviewAfter(created.id, "carol", { verdict: "ok", note: "checked INC-4711" }),
      200,
    );
    expect(reviewed.status).toBe("issued");
    expect(reviewed.review_after).toEqual({
      groups: ["security"],
      review: {
        reviewer: "carol",
        verdict: "ok",
        note: "checked INC-4711",
        channel: "api",
        at: expect.any(String),
      },
    });
    expect(await awaiting()).not.toContain(created.id);
    const events = await allEvents(t, { request_id: created.id });
    expect(events.filter((e) => e.type === "request.reviewed_after")).toEqual([
      expect.objectContaining({
        actor: { kind: "reviewer", id: "carol" },
        data: {
          reviewer: "carol",
          groups: ["security"],
          verdict: "ok",
          note: "checked INC-4711",
          channel: "api",
          status: "issued",
          credential_id: expect.any(String),
        },
      }),
    ]);

    // One review closes it.
    await expectError(
      await reviewAfter(created.id, "carol", { verdict: "concern", note: "second look" }),
      409,
      "already_reviewed_after",
    );
    // Auditors see it.
    const read = await expectJson<AfterReviewBody>(
      await t.call("GET", `/v1/requests/${created.id}`, { key: keyOf(t, "dana") }),
      200,
    );
    expect(read.review_after?.review?.reviewer).toBe("carol");
    // The agent is not told what its reviewers concluded.
    const own = await expectJson<AfterReviewBody>(
      await t.call("GET", `/v1/requests/${created.id}`, { key: keyOf(t, "report-agent") }),
      200,
    );
    expect(own.review_after).toEqual({ groups: ["security"] });
  });

  it("is never the agent's owner's, only the named groups', and only reviewers'", async () => {
    const { id } = await createRequest(t, BREAK_GLASS);
    await collectToken(t, id);
    await expectError(
      await reviewAfter(id, "alice", { verdict: "ok" }),
      403,
      "self_approval_forbidden",
    );
    const refused = await expectError(
      await reviewAfter(id, "bob", { verdict: "ok" }),
      403,
      "not_an_approver",
    );
    expect(refused.details).toEqual({ groups: ["security"] });
    await expectError(
      await reviewAfter(id, "dana", { verdict: "ok" }),
      403,
      "wrong_principal_kind",
    );
    await expectError(
      await reviewAfter(id, "report-agent", { verdict: "ok" }),
      403,
      "wrong_principal_kind",
    );
    await expectError(await reviewAfter(id, undefined, { verdict: "ok" }), 401, "unauthenticated");
    expect(
      (await allEvents(t, { request_id: id })).some((e) => e.type === "request.reviewed_after"),
    ).toBe(false);
  });

  it("refuses malformed, oversized and hostile bodies with a 4xx and records nothing", async () => {
    const { id } = await createRequest(t, BREAK_GLASS);
    await collectToken(t, id);
    const bad: unknown[] = [
      {},
      { verdict: "maybe" },
      { verdict: "concern" },
      { verdict: "concern", note: "" },
      { verdict: "concern", note: "   \u200b " },
      { verdict: "concern", note: "n".repeat(2001) },
      { verdict: "concern", note: "looks \u202Eeniftol" },
      { verdict: "concern", note: "bell\u0007" },
      { verdict: "ok", note: 5 },
      { verdict: "ok", extra: true },
    ];
    for (const body of bad) {
      await expectError(await reviewAfter(id, "carol", body), 400, "validation_failed");
    }
    for (const body of [[{ verdict: "ok" }], null, "ok", 42]) {
      const res = await reviewAfter(id, "carol", JSON.stringify(body));
      expect(res.status).toBe(400);
      const { error } = (await res.json()) as { error: { code: string } };
      expect(["validation_failed", "invalid_json"]).toContain(error.code);
    }
    await expectError(await reviewAfter(id, "carol", "{not json"), 400, "invalid_json");
    await expectError(
      await reviewAfter(id, "carol", { verdict: "concern", note: "x".repeat(70_000) }),
      413,
      "payload_too_large",
    );
    await expectError(
      await t.call("POST", "/v1/requests/not-an-id/review-after", {
        key: keyOf(t, "carol"),
        body: { verdict: "ok" },
      }),
      400,
      "validation_failed",
    );
    await expectError(
      await reviewAfter("req_AAAAAAAAAAAAAAAAAAAAAA", "carol", { verdict: "ok" }),
      404,
      "not_found",
    );
    expect(
      (await allEvents(t, { request_id: id })).some((e) => e.type === "request.reviewed_after"),
    ).toBe(false);
    // A concern with its note is recorded, and changes no credential.
    const concern = await expectJson<AfterReviewBody>(
      await reviewAfter(id, "carol", { verdict: "concern", note: "no incident on record" }),
      200,
    );
    expect(concern.status).toBe("issued");
    expect(concern.review_after?.review).toMatchObject({
      verdict: "concern",
      note: "no incident on record",
    });
  });

  it("still looks back once the credential was used or expired", async () => {
    const used = await createRequest(t, BREAK_GLASS);
    const token = await collectToken(t, used.id);
    await expectJson(
      await t.call("POST", "/v1/tokens/consume", {
        key: keyOf(t, "billing-api"),
        body: { token },
      }),
      200,
    );
    const expired = await createRequest(t, BREAK_GLASS);
    await collectToken(t, expired.id);
    t.clock.advance(301);
    await t.writ.broker.expireDue();
    for (const [id, status] of [
      [used.id, "used"],
      [expired.id, "expired"],
    ] as const) {
      expect(await awaiting()).toContain(id);
      const body = await expectJson<AfterReviewBody>(
        await reviewAfter(id, "carol", { verdict: "ok" }),
        200,
      );
      expect(body.status).toBe(status);
      expect(await awaiting()).not.toContain(id);
    }
  });

  it("filters by status or by what awaits, not both", async () => {
    await expectError(
      await t.call("GET", "/v1/requests?awaiting=review_after&status=issued", {
        key: keyOf(t, "dana"),
      }),
      400,
      "validation_failed",
    );
    await expectError(
      await t.call("GET", "/v1/requests?awaiting=approval", { key: keyOf(t, "dana") }),
      400,
      "validation_failed",
    );
  });
});
