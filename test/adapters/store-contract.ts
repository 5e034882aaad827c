import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type DomainEvent,
  type EventType,
  NO_REQUEST,
  type RecordedEvent,
} from "../../src/domain/events.js";
import { newId } from "../../src/domain/ids.js";
import { SYSTEM_ACTOR } from "../../src/domain/principal.js";
import type { AccessRequest, RequestStatus } from "../../src/domain/request.js";
import type { EventQuery, EventScanQuery, RequestStore } from "../../src/ports/store.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");

/** A stored request as the domain would make it; unique id unless given. */
export function sampleRequest(overrides: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id: newId("req"),
    version: 1,
    agentId: "report-agent",
    owner: "alice",
    action: "db:export",
    resource: "db://prod/customers",
    credentialType: "jwt",
    audience: "billing-api",
    reason: "churn",
    context: { rows: 12, nested: { tags: ["pii", null, true] } },
    status: "pending",
    decision: {
      effect: "approve",
      policies: ["customers-export"],
      requirements: [{ groups: ["data-owners"], quorum: 2 }],
      ttlSeconds: 300,
      approvalTimeoutSeconds: 900,
      reasonRequired: true,
      sensitiveFields: ["customer_email"],
    },
    grantedTtlSeconds: 300,
    createdAt: T0,
    updatedAt: T0,
    expiresAt: T0 + 900_000,
    reviews: [],
    ...overrides,
  };
}

export function sampleEvent(
  requestId: string,
  type: EventType = "request.created",
  data: DomainEvent["data"] = {},
): DomainEvent {
  return { type, requestId, actor: { kind: "agent", id: "report-agent" }, time: T0, data };
}

/** Appends `count` events of one request in batches of 50; resolves with them as recorded. */
export async function appendSampleEvents(
  store: RequestStore,
  count: number,
): Promise<RecordedEvent[]> {
  const request = sampleRequest();
  const out: RecordedEvent[] = [];
  for (let n = 0; n < count; n += 50) {
    const batch = Array.from({ length: Math.min(50, count - n) }, (_, i) =>
      sampleEvent(request.id, "token.replay_blocked", { n: n + i }),
    );
    out.push(...(await store.append(batch)));
  }
  return out;
}

/**
 * Orders stream ids without assuming their form beyond "increasing": plain integers
 * ("17") and Redis stream ids ("1768467600000-3") both compare part by part.
 */
export function compareStreamIds(a: string, b: string): number {
  const pa = a.split("-").map(BigInt);
  const pb = b.split("-").map(BigInt);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function expectIncreasing(events: readonly RecordedEvent[]) {
  for (let i = 1; i < events.length; i++) {
    expect(
      compareStreamIds((events[i - 1] as RecordedEvent).id, (events[i] as RecordedEvent).id),
    ).toBe(-1);
  }
}

/** What a recorded event says, without its stream id. */
const content = (e: RecordedEvent): DomainEvent => ({
  type: e.type,
  requestId: e.requestId,
  actor: e.actor,
  time: e.time,
  data: e.data,
});

/** Resolves after pending I/O callbacks and timers of this turn have run: not a fixed sleep. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The contract every `RequestStore` adapter must honour. It tests only what the port
 * promises, so the same suite runs against the embedded store and Redis.
 */
export function describeStoreContract(name: string, makeStore: () => Promise<RequestStore>) {
  describe(`RequestStore contract: ${name}`, () => {
    let store: RequestStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    async function created(overrides: Partial<AccessRequest> = {}): Promise<AccessRequest> {
      const request = sampleRequest(overrides);
      const result = await store.create(request, [sampleEvent(request.id)]);
      expect(result.ok).toBe(true);
      return request;
    }

    const ids = (items: readonly AccessRequest[]) => items.map((r) => r.id);

    async function commitStatus(request: AccessRequest, status: RequestStatus, type: EventType) {
      const next = { ...request, status, version: request.version + 1 };
      const result = await store.commit(next, request.version, [sampleEvent(request.id, type)]);
      expect(result.ok).toBe(true);
      return next;
    }

    it("is ready while open", async () => {
      expect(await store.ready()).toBe(true);
    });

    describe("create and get", () => {
      it("round-trips a request and records its events in order", async () => {
        const request = sampleRequest();
        const events = [
          sampleEvent(request.id, "request.created", { agent: "report-agent" }),
          sampleEvent(request.id, "request.decided", { effect: "approve", policies: ["p"] }),
        ];
        const result = await store.create(request, events);
        if (!result.ok) throw new Error("create failed");
        expect(result.events.map(content)).toEqual(events);
        expectIncreasing(result.events);
        expect(await store.get(request.id)).toEqual(request);
        expect(await store.events({ limit: 10 })).toEqual(result.events);
      });

      it("keeps optional fields absent and nested values intact", async () => {
        const { audience: _a, reason: _r, ...bare } = sampleRequest();
        const request: AccessRequest = {
          ...bare,
          status: "issued",
          credential: { type: "jwt", id: "jti_x", issuedAt: T0, expiresAt: T0 + 1000 },
          reviews: [
            {
              reviewerId: "bob",
              verdict: "approve",
              groups: ["data-owners"],
              comment: "ok",
              at: T0,
              channel: "slack",
            },
          ],
        };
        await store.create(request, []);
        const read = await store.get(request.id);
        expect(read).toEqual(request);
        expect(read).not.toHaveProperty("audience");
        expect(read).not.toHaveProperty("reason");
      });

      it("hands out copies: changing what was passed or returned changes nothing stored", async () => {
        const request = sampleRequest();
        const original = structuredClone(request);
        await store.create(request, []);
        (request as { status: string }).status = "approved";
        (request.reviews as unknown[]).push({ reviewerId: "mallory" });

        const read = (await store.get(request.id)) as AccessRequest;
        (read as { status: string }).status = "used";
        (read.context.nested as { tags: unknown[] }).tags.push("tampered");
        (read.decision.policies as string[]).push("tampered");

        expect(await store.get(request.id)).toEqual(original);
        const listed = await store.list({ limit: 10 });
        (listed.items[0] as { status: string }).status = "used";
        expect(await store.get(request.id)).toEqual(original);
      });

      it("answers undefined for an unknown id", async () => {
        expect(await store.get(newId("req"))).toBeUndefined();
      });

      it("refuses a second create with the same id, writing nothing", async () => {
        const request = await created();
        const before = await store.events({ limit: 100 });
        const again = sampleRequest({ id: request.id, status: "approved", agentId: "other" });
        expect(await store.create(again, [sampleEvent(request.id, "request.approved")])).toEqual({
          ok: false,
          reason: "conflict",
        });
        expect(await store.get(request.id)).toEqual(request);
        expect(await store.events({ limit: 100 })).toEqual(before);
        expect((await store.list({ limit: 10 })).items).toHaveLength(1);
      });
    });

    describe("commit", () => {
      it("replaces the request when the version matches, with its events", async () => {
        const request = await created();
        const next = { ...request, status: "approved" as const, version: 2, updatedAt: T0 + 1 };
        const events = [
          sampleEvent(request.id, "approval.granted", { reviewer: "bob" }),
          sampleEvent(request.id, "request.approved", { by: "reviewers" }),
        ];
        const result = await store.commit(next, 1, events);
        if (!result.ok) throw new Error("commit failed");
        expect(result.events.map(content)).toEqual(events);
        expect(await store.get(request.id)).toEqual(next);
        const all = await store.events({ limit: 100 });
        expect(all.map((e) => e.type)).toEqual([
          "request.created",
          "approval.granted",
          "request.approved",
        ]);
        expectIncreasing(all);
      });

      it("refuses a stale or unknown version: nothing written, no events", async () => {
        const request = await created();
        const v2 = await commitStatus(request, "approved", "request.approved");
        const before = await store.events({ limit: 100 });
        for (const expected of [1, 3, 0]) {
          const attempt = { ...v2, status: "cancelled" as const, version: expected + 1 };
          expect(
            await store.commit(attempt, expected, [sampleEvent(request.id, "request.cancelled")]),
          ).toEqual({ ok: false, reason: "conflict" });
        }
        expect(await store.get(request.id)).toEqual(v2);
        expect(await store.events({ limit: 100 })).toEqual(before);
      });

      it("refuses a commit for a request that does not exist", async () => {
        const ghost = sampleRequest({ version: 2 });
        expect(await store.commit(ghost, 1, [sampleEvent(ghost.id, "request.approved")])).toEqual({
          ok: false,
          reason: "conflict",
        });
        expect(await store.get(ghost.id)).toBeUndefined();
        expect(await store.events({ limit: 10 })).toEqual([]);
      });

      it("lets exactly one of several concurrent commits from one version win", async () => {
        const request = await created();
        const statuses = ["approved", "denied", "cancelled", "expired"] as const;
        const results = await Promise.all(
          statuses.map((status) =>
            store.commit({ ...request, status, version: 2 }, 1, [
              sampleEvent(request.id, "request.approved", { status }),
            ]),
          ),
        );
        const winners = results.flatMap((r, i) => (r.ok ? [statuses[i]] : []));
        expect(winners).toHaveLength(1);
        expect((await store.get(request.id))?.status).toBe(winners[0]);
        const committed = await store.events({
          requestId: request.id,
          type: "request.approved",
          limit: 10,
        });
        expect(committed.map((e) => e.data.status)).toEqual(winners);
      });
    });

    describe("append and events", () => {
      it("append records events without touching the request", async () => {
        const request = await created();
        const recorded = await store.append([
          sampleEvent(request.id, "token.replay_blocked", { credential_id: "jti_1" }),
          sampleEvent(request.id, "token.replay_blocked", { credential_id: "jti_2" }),
        ]);
        expect(recorded.map((e) => e.data.credential_id)).toEqual(["jti_1", "jti_2"]);
        expectIncreasing(recorded);
        expect(await store.get(request.id)).toEqual(request);
        const all = await store.events({ limit: 100 });
        expect(all.slice(-2)).toEqual(recorded);
        expectIncreasing(all);
      });

      it("filters by request, type, after and limit, in stream order", async () => {
        const a = await created();
        const b = await created();
        await commitStatus(a, "approved", "request.approved");
        await store.append([sampleEvent(b.id, "token.replay_blocked", { n: 1 })]);
        await commitStatus(b, "cancelled", "request.cancelled");
        await store.append([sampleEvent(a.id, "token.replay_blocked", { n: 2 })]);

        const all = await store.events({ limit: 100 });
        expect(all.map((e) => [e.requestId === a.id ? "a" : "b", e.type])).toEqual([
          ["a", "request.created"],
          ["b", "request.created"],
          ["a", "request.approved"],
          ["b", "token.replay_blocked"],
          ["b", "request.cancelled"],
          ["a", "token.replay_blocked"],
        ]);
        expectIncreasing(all);
        expect(new Set(all.map((e) => e.id)).size).toBe(all.length);

        const ofA = await store.events({ requestId: a.id, limit: 100 });
        expect(ofA).toEqual(all.filter((e) => e.requestId === a.id));
        const replays = await store.events({ type: "token.replay_blocked", limit: 100 });
        expect(replays.map((e) => e.data.n)).toEqual([1, 2]);
        const both = await store.events({
          requestId: b.id,
          type: "token.replay_blocked",
          limit: 100,
        });
        expect(both.map((e) => e.data.n)).toEqual([1]);

        const third = all[2] as RecordedEvent;
        expect(await store.events({ after: third.id, limit: 100 })).toEqual(all.slice(3));
        expect(await store.events({ after: third.id, limit: 2 })).toEqual(all.slice(3, 5));
        expect(await store.events({ after: third.id, requestId: a.id, limit: 100 })).toEqual([
          all[5],
        ]);
        expect(await store.events({ after: (all[5] as RecordedEvent).id, limit: 100 })).toEqual([]);
        expect(await store.events({ limit: 1 })).toEqual(all.slice(0, 1));
      });

      it("pages through the whole stream with after cursors, each event once", async () => {
        const request = await created();
        for (let i = 0; i < 5; i++) {
          await store.append(
            Array.from({ length: 5 }, (_, j) =>
              sampleEvent(request.id, "token.replay_blocked", { n: i * 5 + j }),
            ),
          );
        }
        const seen: RecordedEvent[] = [];
        let after: string | undefined;
        for (let page = 0; page < 100; page++) {
          const items = await store.events({
            type: "token.replay_blocked",
            limit: 7,
            ...(after !== undefined ? { after } : {}),
          });
          seen.push(...items);
          if (items.length < 7) break;
          after = (items.at(-1) as RecordedEvent).id;
        }
        expect(seen.map((e) => e.data.n)).toEqual(Array.from({ length: 25 }, (_, n) => n));
        expectIncreasing(seen);
      });

      it("reads one request's events on from any cursor: its own events, another request's, or none", async () => {
        const a = await created();
        const b = await created();
        for (let i = 0; i < 12; i++) {
          await store.append([
            sampleEvent(a.id, "token.replay_blocked", { n: i }),
            ...(i % 3 === 0 ? [sampleEvent(b.id, "token.replay_blocked", { n: i })] : []),
          ]);
        }
        const all = await store.events({ limit: 1000 });
        const ofA = all.filter((e) => e.requestId === a.id);
        for (const [index, cursor] of all.entries()) {
          const following = ofA.filter((e) => all.indexOf(e) > index);
          expect(await store.events({ requestId: a.id, after: cursor.id, limit: 100 })).toEqual(
            following,
          );
          expect(await store.events({ requestId: a.id, after: cursor.id, limit: 2 })).toEqual(
            following.slice(0, 2),
          );
          const scan = await store.scanEvents({
            requestId: a.id,
            after: cursor.id,
            type: "token.replay_blocked",
            limit: 100,
            scanLimit: 3,
          });
          expect(scan.items).toEqual(following.slice(0, 3));
          if (following.length > 3) expect(scan.next).toBe(following[2]?.id);
        }
      });

      it("answers an empty stream with no events", async () => {
        expect(await store.events({ limit: 10 })).toEqual([]);
        expect(await store.events({ requestId: newId("req"), limit: 10 })).toEqual([]);
      });

      it("records events that belong to no request: in the stream and by type, never under a request id", async () => {
        const request = await created();
        const [newest] = (await store.events({ limit: 1000 })).slice(-1);
        const follower = store.waitForEvents(newest?.id, 30_000);
        const aboutWrit = (type: EventType, data: DomainEvent["data"]): DomainEvent => ({
          type,
          requestId: NO_REQUEST,
          actor: SYSTEM_ACTOR,
          time: T0,
          data,
        });
        const [repaired] = await store.append([aboutWrit("audit.repaired", { log: "." })]);
        // A follower of the stream hears of it like of any other event.
        await follower;
        // Mixed with a request's events, in an append and in a commit.
        await store.append([
          sampleEvent(request.id, "token.replay_blocked", { n: 1 }),
          aboutWrit("audit.gap", { after: "1", first_available: "2" }),
          sampleEvent(request.id, "token.replay_blocked", { n: 2 }),
        ]);
        const cancelled = { ...request, status: "cancelled" as const, version: 2 };
        expect(
          (
            await store.commit(cancelled, 1, [
              aboutWrit("audit.gap", { after: "3", first_available: "4" }),
              sampleEvent(request.id, "request.cancelled"),
            ])
          ).ok,
        ).toBe(true);

        const all = await store.events({ limit: 100 });
        expect(all.map((e) => [e.requestId === NO_REQUEST ? "-" : "r", e.type])).toEqual([
          ["r", "request.created"],
          ["-", "audit.repaired"],
          ["r", "token.replay_blocked"],
          ["-", "audit.gap"],
          ["r", "token.replay_blocked"],
          ["-", "audit.gap"],
          ["r", "request.cancelled"],
        ]);
        expectIncreasing(all);
        expect(all[1]).toEqual({ ...aboutWrit("audit.repaired", { log: "." }), id: repaired?.id });

        const gaps = await store.events({ type: "audit.gap", limit: 100 });
        expect(gaps.map((e) => e.data.after)).toEqual(["1", "3"]);
        expect(gaps.every((e) => e.requestId === NO_REQUEST)).toBe(true);
        const firstGap = (gaps[0] as RecordedEvent).id;
        expect(await store.events({ type: "audit.gap", after: firstGap, limit: 100 })).toEqual(
          gaps.slice(1),
        );

        // Reading one request's events never returns them, not even for "".
        const ofRequest = await store.events({ requestId: request.id, limit: 100 });
        expect(ofRequest.map((e) => e.type)).toEqual([
          "request.created",
          "token.replay_blocked",
          "token.replay_blocked",
          "request.cancelled",
        ]);
        expect(await store.events({ requestId: NO_REQUEST, limit: 100 })).toEqual([]);
        expect(
          await store.events({ requestId: NO_REQUEST, type: "audit.gap", limit: 100 }),
        ).toEqual([]);
        expect(await store.get(request.id)).toEqual(cancelled);
      });
    });

    describe("recentEvents", () => {
      it("pages back from the newest event with before, each event once, writ's own too", async () => {
        const request = await created();
        await commitStatus(request, "approved", "request.approved");
        for (let i = 0; i < 3; i++) {
          await store.append([
            sampleEvent(request.id, "token.replay_blocked", { n: i }),
            {
              type: "audit.repaired",
              requestId: NO_REQUEST,
              actor: SYSTEM_ACTOR,
              time: T0,
              data: { n: i },
            },
          ]);
        }
        const all = await store.events({ limit: 100 });
        expect(all).toHaveLength(8);
        const seen: RecordedEvent[] = [];
        let before: string | undefined;
        for (let page = 0; page < 10; page++) {
          const items = await store.recentEvents({
            limit: 3,
            ...(before !== undefined ? { before } : {}),
          });
          expect(items.length).toBeLessThanOrEqual(3);
          seen.push(...items);
          if (items.length < 3) break;
          before = (items.at(-1) as RecordedEvent).id;
        }
        expect(seen).toEqual([...all].reverse());
        expect(await store.recentEvents({ limit: 1 })).toEqual([all.at(-1)]);
        const fifth = all[4] as RecordedEvent;
        expect(await store.recentEvents({ before: fifth.id, limit: 100 })).toEqual(
          all.slice(0, 4).reverse(),
        );
        expect(
          await store.recentEvents({ before: (all[0] as RecordedEvent).id, limit: 10 }),
        ).toEqual([]);
      });

      it("answers nothing on an empty stream, or before a position it never handed out", async () => {
        expect(await store.recentEvents({ limit: 10 })).toEqual([]);
        await created();
        for (const before of ["", "abc", "0", "0-0", "007", "--1-", "1-2-3", " 1"]) {
          expect(await store.recentEvents({ before, limit: 10 })).toEqual([]);
        }
      });
    });

    describe("list", () => {
      /** Five requests created a minute apart: r0 oldest, r4 newest. */
      async function five() {
        const statuses: RequestStatus[] = ["pending", "approved", "pending", "denied", "pending"];
        const out: AccessRequest[] = [];
        for (const [i, status] of statuses.entries()) {
          out.push(
            await created({
              status,
              createdAt: T0 + i * 60_000,
              agentId: i % 2 === 0 ? "report-agent" : "ci-job",
              action: i < 2 ? "s3:GetObject" : "db:export",
            }),
          );
        }
        return out;
      }

      it("lists newest first", async () => {
        const r = await five();
        const page = await store.list({ limit: 10 });
        expect(ids(page.items)).toEqual(ids([...r].reverse()));
        expect(page.items[0]).toEqual(r[4]);
      });

      it("filters by status, agent, action and creation time", async () => {
        const r = await five();
        const pick = (...i: number[]) => i.map((n) => (r[n] as AccessRequest).id);
        const all = async (query: Omit<Parameters<RequestStore["list"]>[0], "limit">) =>
          ids((await store.list({ ...query, limit: 10 })).items);
        expect(await all({ status: "pending" })).toEqual(pick(4, 2, 0));
        expect(await all({ agentId: "ci-job" })).toEqual(pick(3, 1));
        expect(await all({ action: "s3:GetObject" })).toEqual(pick(1, 0));
        expect(await all({ since: T0 + 60_000 })).toEqual(pick(4, 3, 2, 1));
        expect(await all({ until: T0 + 180_000 })).toEqual(pick(2, 1, 0));
        expect(await all({ since: T0 + 60_000, until: T0 + 180_000 })).toEqual(pick(2, 1));
        expect(
          await all({ status: "pending", agentId: "report-agent", action: "db:export" }),
        ).toEqual(pick(4, 2));
        expect(await all({ status: "used" })).toEqual([]);
      });

      it("pages with the cursor, each request once, in order", async () => {
        const r = await five();
        for (const [query, expected] of [
          [{}, [...r].reverse()],
          [{ status: "pending" as const }, [r[4], r[2], r[0]]],
        ] as const) {
          const seen: AccessRequest[] = [];
          let cursor: string | undefined;
          for (let page = 0; page < 20; page++) {
            const result = await store.list({
              ...query,
              limit: 2,
              ...(cursor !== undefined ? { cursor } : {}),
            });
            expect(result.items.length).toBeLessThanOrEqual(2);
            seen.push(...result.items);
            if (result.next === undefined) break;
            cursor = result.next;
          }
          expect(ids(seen)).toEqual(ids(expected as AccessRequest[]));
        }
      });

      it("answers an empty page with no cursor when there is nothing", async () => {
        expect(await store.list({ limit: 10 })).toEqual({ items: [] });
      });
    });

    describe("due", () => {
      it("names live requests at or past their deadline, oldest deadline first", async () => {
        const now = T0 + 1_000_000;
        const late2 = await created({ status: "pending", expiresAt: now - 10 });
        const late1 = await created({ status: "approved", expiresAt: now - 500 });
        const late3 = await created({ status: "issued", expiresAt: now });
        await created({ status: "pending", expiresAt: now + 1 });
        for (const status of ["denied", "cancelled", "used", "expired", "revoked"] as const) {
          await created({ status, expiresAt: now - 1000 });
        }
        expect(await store.due(now, 10)).toEqual([late1.id, late2.id, late3.id]);
        expect(await store.due(now, 2)).toEqual([late1.id, late2.id]);
        expect(await store.due(T0, 10)).toEqual([]);
      });

      it("follows commits: a settled or extended request is no longer due", async () => {
        const now = T0 + 1_000_000;
        const a = await created({ expiresAt: now - 1 });
        const b = await created({ expiresAt: now - 2 });
        expect(await store.due(now, 10)).toEqual([b.id, a.id]);
        await commitStatus(a, "expired", "request.expired");
        const extended = {
          ...b,
          status: "approved" as const,
          version: 2,
          expiresAt: now + 300_000,
        };
        expect((await store.commit(extended, 1, [])).ok).toBe(true);
        expect(await store.due(now, 10)).toEqual([]);
        expect(await store.due(now + 300_000, 10)).toEqual([b.id]);
      });
    });

    describe("escalationsDue", () => {
      /** A pending request whose decision escalates `afterSeconds` after T0. */
      const escalating = (afterSeconds: number, overrides: Partial<AccessRequest> = {}) => {
        const base = sampleRequest();
        return created({
          decision: {
            ...base.decision,
            escalation: { afterSeconds, groups: ["security-oncall"] },
          },
          ...overrides,
        });
      };

      it("names pending requests at or past their escalation time, earliest first", async () => {
        const later = await escalating(600);
        const sooner = await escalating(300);
        const atNow = await escalating(900);
        await escalating(901);
        // No escalation, not pending, or escalated already: never due.
        await created();
        await escalating(60, { status: "approved" });
        await escalating(60, { status: "denied" });
        await escalating(60, { escalatedAt: T0 + 60_000 });
        const now = T0 + 900_000;
        expect(await store.escalationsDue(now, 10)).toEqual([sooner.id, later.id, atNow.id]);
        expect(await store.escalationsDue(now, 1)).toEqual([sooner.id]);
        expect(await store.escalationsDue(T0 + 299_999, 10)).toEqual([]);
      });

      it("follows commits: an escalated or decided request is no longer due", async () => {
        const a = await escalating(300);
        const b = await escalating(300);
        const c = await escalating(300);
        const now = T0 + 300_000;
        expect(new Set(await store.escalationsDue(now, 10))).toEqual(new Set([a.id, b.id, c.id]));
        const escalated = { ...a, version: 2, escalatedAt: now };
        expect(
          (await store.commit(escalated, 1, [sampleEvent(a.id, "request.escalated")])).ok,
        ).toBe(true);
        await commitStatus(b, "approved", "request.approved");
        // A change that keeps it pending and unescalated (an approval short of quorum) keeps it due.
        expect((await store.commit({ ...c, version: 2 }, 1, [])).ok).toBe(true);
        expect(await store.escalationsDue(now, 10)).toEqual([c.id]);
      });

      it("lets exactly one of two concurrent escalations from one version record it", async () => {
        const request = await escalating(300);
        const now = T0 + 300_000;
        const results = await Promise.all(
          [1, 2].map((n) =>
            store.commit({ ...request, version: 2, escalatedAt: now + n }, 1, [
              sampleEvent(request.id, "request.escalated", { n }),
            ]),
          ),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        const recorded = await store.events({
          requestId: request.id,
          type: "request.escalated",
          limit: 10,
        });
        expect(recorded).toHaveLength(1);
        expect((await store.get(request.id))?.escalatedAt).toBe(now + Number(recorded[0]?.data.n));
        expect(await store.escalationsDue(now + 10, 10)).toEqual([]);
      });
    });

    describe("reindex", () => {
      it("changes nothing of what create and commit indexed, nor for an unknown id", async () => {
        const base = sampleRequest();
        const request = await created({
          decision: { ...base.decision, escalation: { afterSeconds: 300, groups: ["sec"] } },
        });
        const other = await created();
        await commitStatus(other, "approved", "request.approved");
        for (const id of [request.id, other.id, "req_AAAAAAAAAAAAAAAAAAAAAA", ""]) {
          expect(await store.reindex(id)).toBe(false);
        }
        expect(await store.escalationsDue(T0 + 300_000, 10)).toEqual([request.id]);
        expect(new Set(await store.due(T0 + 900_000, 10))).toEqual(new Set([request.id, other.id]));
      });
    });

    describe("list awaiting review_after", () => {
      const credential = { type: "jwt" as const, id: "jti_x", issuedAt: T0, expiresAt: T0 + 1000 };
      /** An approved request whose decision asks for a review after the fact. */
      const reviewable = (overrides: Partial<AccessRequest> = {}) => {
        const base = sampleRequest();
        return created({
          status: "approved",
          decision: { ...base.decision, effect: "allow", requirements: [], reviewAfter: ["sec"] },
          ...overrides,
        });
      };
      const issue = async (request: AccessRequest) => {
        const next = { ...request, status: "issued" as const, credential, version: 2 };
        expect(
          (await store.commit(next, 1, [sampleEvent(request.id, "credential.issued")])).ok,
        ).toBe(true);
        return next;
      };
      const awaiting = async (extra: { agentId?: string; limit?: number; cursor?: string } = {}) =>
        store.list({ awaiting: "review_after", limit: 10, ...extra });

      it("holds issued requests whose policy asks for one until it is recorded, newest first", async () => {
        const older = await issue(await reviewable({ createdAt: T0 }));
        const newer = await issue(await reviewable({ createdAt: T0 + 1 }));
        // Not issued yet, or no review asked for: not listed.
        await reviewable({ createdAt: T0 + 2 });
        await issue(await created({ status: "approved", createdAt: T0 + 3 }));
        expect(ids((await awaiting()).items)).toEqual([newer.id, older.id]);
        expect(ids((await awaiting({ agentId: "nobody" })).items)).toEqual([]);
        const first = await awaiting({ limit: 1 });
        expect(ids(first.items)).toEqual([newer.id]);
        expect(first.next).toBeDefined();
        const second = await awaiting({ limit: 1, ...(first.next ? { cursor: first.next } : {}) });
        expect(ids(second.items)).toEqual([older.id]);

        // Used: still waits. Reviewed: leaves the index for good.
        const used = await commitStatus(newer, "used", "token.used");
        expect(ids((await awaiting()).items)).toEqual([newer.id, older.id]);
        const reviewed = {
          ...used,
          version: used.version + 1,
          reviewedAfter: {
            reviewerId: "carol",
            verdict: "ok" as const,
            groups: ["sec"],
            at: T0 + 5,
            channel: "api" as const,
          },
        };
        expect(
          (
            await store.commit(reviewed, used.version, [
              sampleEvent(newer.id, "request.reviewed_after"),
            ])
          ).ok,
        ).toBe(true);
        expect(ids((await awaiting()).items)).toEqual([older.id]);
        await commitStatus(older, "expired", "credential.expired");
        expect(ids((await awaiting()).items)).toEqual([older.id]);
      });

      it("lets exactly one of two concurrent reviews from one version record it", async () => {
        const request = await issue(await reviewable());
        const results = await Promise.all(
          ["carol", "erin"].map((reviewerId) =>
            store.commit(
              {
                ...request,
                version: 3,
                reviewedAfter: {
                  reviewerId,
                  verdict: "ok",
                  groups: ["sec"],
                  at: T0,
                  channel: "api",
                },
              },
              2,
              [sampleEvent(request.id, "request.reviewed_after", { reviewer: reviewerId })],
            ),
          ),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        const recorded = await store.events({
          requestId: request.id,
          type: "request.reviewed_after",
          limit: 10,
        });
        expect(recorded).toHaveLength(1);
        expect((await store.get(request.id))?.reviewedAfter?.reviewerId).toBe(
          recorded[0]?.data.reviewer,
        );
        expect(ids((await awaiting()).items)).toEqual([]);
      });
    });

    describe("waitForChange", () => {
      /** Tracks whether a promise has settled. */
      function track(promise: Promise<void>) {
        const state = { settled: false, promise };
        promise.then(() => {
          state.settled = true;
        });
        return state;
      }

      it("resolves when the request is committed", async () => {
        const request = await created();
        const started = performance.now();
        const waiting = track(store.waitForChange(request.id, 1, 30_000));
        await turn();
        expect(waiting.settled).toBe(false);
        await commitStatus(request, "approved", "request.approved");
        await waiting.promise;
        expect(performance.now() - started).toBeLessThan(10_000);
      });

      it("is not woken by a change to another request", async () => {
        const watched = await created();
        const other = await created();
        const waiting = track(store.waitForChange(watched.id, 1, 30_000));
        await commitStatus(other, "approved", "request.approved");
        await turn();
        await turn();
        expect(waiting.settled).toBe(false);
        await commitStatus(watched, "approved", "request.approved");
        await waiting.promise;
      });

      it("resolves after the timeout when nothing changes", async () => {
        const request = await created();
        const started = performance.now();
        await store.waitForChange(request.id, 1, 50);
        const elapsed = performance.now() - started;
        expect(elapsed).toBeGreaterThanOrEqual(40);
        expect(elapsed).toBeLessThan(5_000);
        expect((await store.get(request.id))?.version).toBe(1);
      });

      it("resolves when the signal aborts, or at once if it already has", async () => {
        const request = await created();
        const controller = new AbortController();
        const waiting = track(store.waitForChange(request.id, 1, 30_000, controller.signal));
        await turn();
        expect(waiting.settled).toBe(false);
        controller.abort();
        await waiting.promise;
        await store.waitForChange(request.id, 1, 30_000, AbortSignal.abort());
      });

      it("resolves at once when the version already differs", async () => {
        const request = await created();
        await commitStatus(request, "approved", "request.approved");
        const started = performance.now();
        await store.waitForChange(request.id, 1, 30_000);
        expect(performance.now() - started).toBeLessThan(5_000);
      });
    });

    describe("waitForEvents", () => {
      it("resolves at once when the stream already holds a newer event", async () => {
        await created();
        await store.waitForEvents(undefined, 30_000);
      });

      it("waits past the newest event until another is recorded", async () => {
        const request = await created();
        const [newest] = (await store.events({ limit: 1000 })).slice(-1);
        let settled = false;
        const waiting = store.waitForEvents(newest?.id, 30_000).then(() => {
          settled = true;
        });
        await turn();
        await turn();
        expect(settled).toBe(false);
        await store.append([sampleEvent(request.id, "token.replay_blocked")]);
        await waiting;
        expect(settled).toBe(true);
      });

      it("resolves after the timeout, or when the signal aborts", async () => {
        await created();
        const [newest] = (await store.events({ limit: 1000 })).slice(-1);
        const started = performance.now();
        await store.waitForEvents(newest?.id, 50);
        expect(performance.now() - started).toBeGreaterThanOrEqual(40);
        const controller = new AbortController();
        const waiting = store.waitForEvents(newest?.id, 30_000, controller.signal);
        controller.abort();
        await waiting;
      });
    });

    describe("nextEvents", () => {
      it("answers at once what the stream holds after the cursor, at most the limit, in order", async () => {
        const request = await created();
        const all = await store.events({ limit: 1000 });
        const appended = await store.append([
          sampleEvent(request.id, "token.used"),
          sampleEvent(request.id, "token.replay_blocked"),
          sampleEvent(request.id, "token.replay_blocked"),
        ]);
        const cursor = all.at(-1)?.id;
        const page = await store.nextEvents(cursor, { limit: 2, timeoutMs: 30_000 });
        expect(page).toEqual(appended.slice(0, 2));
        const rest = await store.nextEvents(page.at(-1)?.id, { limit: 10, timeoutMs: 30_000 });
        expect(rest).toEqual(appended.slice(2));
        const fromStart = await store.nextEvents(undefined, { limit: 1000, timeoutMs: 30_000 });
        expect(fromStart).toEqual([...all, ...appended]);
      });

      it("waits past the newest event and answers the next ones, whoever records them", async () => {
        const request = await created();
        const newest = (await store.events({ limit: 1000 })).at(-1)?.id;
        // Round after round: a follower first behind the store's reader, then caught up with it.
        let cursor = newest;
        for (let round = 0; round < 3; round++) {
          let answered: readonly RecordedEvent[] | undefined;
          const reading = store
            .nextEvents(cursor, { limit: 100, timeoutMs: 30_000, internal: true })
            .then((events) => {
              answered = events;
            });
          await turn();
          await turn();
          expect(answered).toBeUndefined();
          const recorded = await store.append([
            sampleEvent(request.id, "token.replay_blocked", { round }),
          ]);
          await reading;
          expect(answered).toEqual(recorded);
          cursor = recorded.at(-1)?.id;
        }
      });

      it("answers nothing after the timeout, or once the signal aborts", async () => {
        await created();
        const newest = (await store.events({ limit: 1000 })).at(-1)?.id;
        const started = performance.now();
        expect(await store.nextEvents(newest, { limit: 10, timeoutMs: 50 })).toEqual([]);
        expect(performance.now() - started).toBeGreaterThanOrEqual(40);
        const controller = new AbortController();
        const reading = store.nextEvents(newest, {
          limit: 10,
          timeoutMs: 30_000,
          signal: controller.signal,
        });
        controller.abort();
        expect(await reading).toEqual([]);
      });
    });

    describe("event time bounds and the newest event id", () => {
      it("selects events by time (since inclusive, until exclusive), with the other filters", async () => {
        const request = await created();
        const at = (seconds: number, type: EventType) => ({
          ...sampleEvent(request.id, type),
          time: T0 + seconds * 1000,
        });
        await store.append([
          at(10, "token.used"),
          at(20, "token.replay_blocked"),
          at(30, "token.replay_blocked"),
          at(40, "token.used"),
        ]);
        const times = async (query: Omit<EventQuery, "limit">) =>
          (await store.events({ ...query, limit: 100 }))
            .filter((e) => e.time > T0)
            .map((e) => (e.time - T0) / 1000);
        expect(await times({ since: T0 + 20_000 })).toEqual([20, 30, 40]);
        expect(await times({ until: T0 + 30_000 })).toEqual([10, 20]);
        expect(await times({ since: T0 + 20_000, until: T0 + 40_000 })).toEqual([20, 30]);
        expect(
          await times({ since: T0 + 15_000, type: "token.used", requestId: request.id }),
        ).toEqual([40]);
        const all = await store.events({ since: T0 + 10_000, limit: 100 });
        const after = (all[1] as RecordedEvent).id;
        expect(await times({ since: T0 + 10_000, after })).toEqual([30, 40]);
      });

      it("names the newest event, and nothing for an empty stream", async () => {
        expect(await store.lastEventId()).toBeUndefined();
        await created();
        const recorded = await store.append([sampleEvent("req_x", "token.used")]);
        expect(await store.lastEventId()).toBe(recorded[0]?.id);
        const all = await store.events({ limit: 1000 });
        expect(await store.lastEventId()).toBe(all.at(-1)?.id);
      });
    });

    describe("bounded scans of the stream", () => {
      /**
       * A stream of `count` events about requests and about writ itself, one
       * millisecond apart, where `token.replay_blocked` is rare. Returns it as read back.
       */
      async function longStream(count: number): Promise<readonly RecordedEvent[]> {
        const events: DomainEvent[] = [];
        for (let i = 0; i < count; i++) {
          const type: EventType = i % 97 === 5 ? "token.replay_blocked" : "token.used";
          events.push({ ...sampleEvent(i % 3 === 0 ? NO_REQUEST : "req_x", type), time: T0 + i });
        }
        await store.append(events);
        const all = await store.events({ limit: count + 1 });
        expect(all).toHaveLength(count);
        return all;
      }

      /** Follows `next` from the start; checks each call passed over at most `scanLimit` entries. */
      async function walk(
        all: readonly RecordedEvent[],
        query: Omit<EventScanQuery, "after">,
      ): Promise<{ found: RecordedEvent[]; calls: number; empty: number }> {
        const position = new Map(all.map((e, i) => [e.id, i]));
        const found: RecordedEvent[] = [];
        let after: string | undefined;
        let calls = 0;
        let empty = 0;
        for (;;) {
          calls++;
          const scan = await store.scanEvents({
            ...query,
            ...(after !== undefined ? { after } : {}),
          });
          found.push(...scan.items);
          if (scan.items.length === 0) empty++;
          if (scan.next === undefined) break;
          const from = after === undefined ? -1 : (position.get(after) as number);
          const to = position.get(scan.next) as number;
          expect(to - from).toBeGreaterThan(0);
          expect(to - from).toBeLessThanOrEqual(query.scanLimit);
          for (const e of scan.items)
            expect(compareStreamIds(e.id, scan.next)).toBeLessThanOrEqual(0);
          after = scan.next;
        }
        return { found, calls, empty };
      }

      it("passes over at most scanLimit entries per call and says how far it got, even with nothing found", async () => {
        const all = await longStream(1234);
        const rare = all.filter((e) => e.type === "token.replay_blocked");
        // Nothing matches among the first 5 entries: an empty page that names the 5th.
        expect(
          await store.scanEvents({ type: "token.replay_blocked", limit: 10, scanLimit: 5 }),
        ).toEqual({ items: [], next: all[4]?.id });
        const byType = await walk(all, { type: "token.replay_blocked", limit: 10, scanLimit: 50 });
        expect(byType.found).toEqual(rare);
        expect(byType.empty).toBeGreaterThan(0);
        expect(byType.calls).toBe(Math.ceil(1234 / 50));
        // Time bounds near the end of the stream, and a full page on the way.
        const late = all.filter((e) => e.time >= T0 + 1200 && e.time < T0 + 1230);
        const byTime = await walk(all, {
          since: T0 + 1200,
          until: T0 + 1230,
          limit: 7,
          scanLimit: 100,
        });
        expect(byTime.found).toEqual(late);
        expect(byTime.empty).toBe(12);
      });

      it("names the last match of a full page, and stops at the end of the stream without next", async () => {
        const all = await longStream(300);
        const rare = all.filter((e) => e.type === "token.replay_blocked");
        const full = await store.scanEvents({
          type: "token.replay_blocked",
          limit: 2,
          scanLimit: 1000,
        });
        expect(full).toEqual({ items: rare.slice(0, 2), next: rare[1]?.id });
        // The budget reaches past the end: the end is known, so there is no next.
        expect(
          await store.scanEvents({
            type: "token.replay_blocked",
            after: rare[1]?.id as string,
            limit: 10,
            scanLimit: 1000,
          }),
        ).toEqual({ items: rare.slice(2) });
        // A budget spent exactly at the last entry may not know it was the last.
        const exact = await store.scanEvents({
          type: "token.used",
          after: all[199]?.id as string,
          since: T0 + 10_000,
          limit: 10,
          scanLimit: 100,
        });
        expect(exact).toEqual({ items: [], next: all[299]?.id });
        expect(
          await store.scanEvents({ after: all[299]?.id as string, limit: 10, scanLimit: 100 }),
        ).toEqual({ items: [] });
        // Without filters too, the budget bounds the read.
        expect(await store.scanEvents({ limit: 100, scanLimit: 3 })).toEqual({
          items: all.slice(0, 3),
          next: all[2]?.id,
        });
      });

      it("bounds a read of one request by that request's events it passes over", async () => {
        const all = await longStream(1234);
        const ofRequest = all.filter((e) => e.requestId === "req_x");
        const rare = ofRequest.filter((e) => e.type === "token.replay_blocked");
        const found: RecordedEvent[] = [];
        let after: string | undefined;
        let calls = 0;
        for (;;) {
          calls++;
          const scan = await store.scanEvents({
            requestId: "req_x",
            type: "token.replay_blocked",
            limit: 10,
            scanLimit: 50,
            ...(after !== undefined ? { after } : {}),
          });
          found.push(...scan.items);
          if (scan.next === undefined) break;
          // `next` is one of the request's events, at most 50 of them past `after`.
          const from = after === undefined ? -1 : ofRequest.findIndex((e) => e.id === after);
          const to = ofRequest.findIndex((e) => e.id === scan.next);
          expect(to - from).toBeGreaterThan(0);
          expect(to - from).toBeLessThanOrEqual(50);
          after = scan.next;
        }
        expect(found).toEqual(rare);
        expect(calls).toBe(Math.ceil(ofRequest.length / 50));
        // Events about writ itself belong to no request.
        expect(await store.scanEvents({ requestId: NO_REQUEST, limit: 10, scanLimit: 50 })).toEqual(
          { items: [] },
        );
      });

      it("reads cursors it never handed out as the end, and refuses a budget that is no count", async () => {
        await longStream(10);
        for (const after of ["abc", "1-2-3", "18446744073709551615-18446744073709551615"]) {
          expect(
            await store.scanEvents({ after, type: "token.used", limit: 10, scanLimit: 100 }),
          ).toEqual({ items: [] });
        }
        for (const scanLimit of [0, -1, 1.5, Number.NaN]) {
          await expect(store.scanEvents({ limit: 10, scanLimit })).rejects.toThrow(TypeError);
        }
      });
    });

    describe("hostile and odd input", () => {
      it("reads cursors it never handed out as the end, never as a restart", async () => {
        await created();
        for (const cursor of ["999999999999", "0", "123456789012345678901234567"]) {
          const page = await store.list({ limit: 10, cursor });
          expect(page.items.length).toBeLessThanOrEqual(1);
          expect(page.next).toBeUndefined();
        }
        for (const after of [
          "abc",
          "--1-",
          "1-2-3",
          "99999999999999999999999-0",
          "18446744073709551615-18446744073709551615",
        ]) {
          expect(await store.events({ after, limit: 10 })).toEqual([]);
          expect(await store.events({ after, type: "token.used", limit: 10 })).toEqual([]);
        }
      });

      it("answers nothing for ids that are not ids of its requests", async () => {
        await created();
        for (const id of ["", "req_{other}", "x".repeat(10_000), "req_\u0000\n"]) {
          expect(await store.get(id)).toBeUndefined();
          expect(await store.events({ requestId: id, limit: 10 })).toEqual([]);
        }
      });

      it("combines time bounds, filters and the cursor", async () => {
        const made: AccessRequest[] = [];
        for (let i = 0; i < 6; i++) {
          made.push(
            await created({
              createdAt: T0 + i * 1000,
              status: i % 2 === 0 ? "pending" : "approved",
            }),
          );
        }
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page++) {
          const result = await store.list({
            status: "pending",
            since: T0 + 1000,
            until: T0 + 5000,
            limit: 1,
            ...(cursor !== undefined ? { cursor } : {}),
          });
          seen.push(...result.items.map((r) => r.id));
          if (result.next === undefined) break;
          cursor = result.next;
        }
        expect(seen).toEqual([made[4]?.id, made[2]?.id]);
      });

      it("orders requests created in the same millisecond by creation", async () => {
        const made: AccessRequest[] = [];
        for (let i = 0; i < 4; i++) made.push(await created({ createdAt: T0 }));
        const page = await store.list({ limit: 10 });
        expect(page.items.map((r) => r.id)).toEqual(made.map((r) => r.id).reverse());
      });
    });

    describe("close", () => {
      it("resolves pending waits, then refuses work with store_unavailable", async () => {
        const request = await created();
        const [newest] = (await store.events({ limit: 1000 })).slice(-1);
        const waits = [
          store.waitForChange(request.id, 1, 30_000),
          store.waitForEvents(newest?.id, 30_000),
        ];
        await turn();
        await store.close();
        await Promise.all(waits);
        expect(await store.ready()).toBe(false);
        await expect(store.get(request.id)).rejects.toMatchObject({ code: "store_unavailable" });
        await expect(
          store.commit({ ...request, version: 2 }, 1, [sampleEvent(request.id)]),
        ).rejects.toMatchObject({ code: "store_unavailable" });
      });
    });
  });
}
