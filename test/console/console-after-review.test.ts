import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempPolicies } from "../policy/temp-policies.js";
import { allEvents, collectToken, createRequest, keyOf } from "../support/api.js";
import { BREAK_GLASS, BREAK_GLASS_POLICY } from "../support/break-glass.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { ConsoleClient } from "./console-client.js";

let t: TestWrit;
let policies: Awaited<ReturnType<typeof tempPolicies>>;

beforeEach(async () => {
  policies = await tempPolicies({ "break-glass.cedar": BREAK_GLASS_POLICY });
  t = await startTestWrit({ policies: { dir: policies.dir, watch: false } });
});

afterEach(async () => {
  await t.close();
  await policies.remove();
});

async function signedIn(id: string): Promise<ConsoleClient> {
  const client = new ConsoleClient(t);
  expect((await client.signIn(keyOf(t, id))).status).toBe(303);
  return client;
}

const formOf = (id: string) => `action="/console/requests/${id}/review-after"`;

async function issued(): Promise<string> {
  const { id } = await createRequest(t, BREAK_GLASS);
  await collectToken(t, id);
  return id;
}

const reviewedAfter = async (id: string) =>
  (await allEvents(t, { request_id: id })).filter((e) => e.type === "request.reviewed_after");

describe("console: review after the fact", () => {
  it("lists what waits and offers the form to the named groups only, never the owner", async () => {
    const id = await issued();
    const notYet = (await createRequest(t, BREAK_GLASS)).id;
    const carol = await signedIn("carol");
    const page = await carol.get("/console/after-review");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain(formOf(id));
    expect(html).not.toContain(notYet);
    expect(html).toContain('href="/console/after-review" class="active"');

    const request = await (await carol.get(`/console/requests/${id}`)).text();
    expect(request).toContain(formOf(id));
    expect(request).toContain("To be reviewed after the fact by a member of security");
    const before = await (await carol.get(`/console/requests/${notYet}`)).text();
    expect(before).not.toContain(formOf(notYet));
    expect(before).toContain("once a credential is issued");

    for (const [who, why] of [
      ["alice", "You own this agent"],
      ["bob", "You are not in a group that may review this request after the fact."],
      ["dana", "Reviewers of the named groups review it after the fact."],
    ] as const) {
      const client = await signedIn(who);
      for (const path of ["/console/after-review", `/console/requests/${id}`]) {
        const other = await (await client.get(path)).text();
        expect(other, `${who} ${path}`).not.toContain(formOf(id));
        expect(other, `${who} ${path}`).toContain(why);
      }
    }
  });

  it("records a concern with its note, once, and shows it", async () => {
    const id = await issued();
    const carol = await signedIn("carol");
    const csrf = await carol.csrf();
    const res = await carol.post(`/console/requests/${id}/review-after`, {
      csrf,
      verdict: "concern",
      note: "no incident INC-4711 on record",
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/console/requests/${id}`);
    expect(await reviewedAfter(id)).toEqual([
      expect.objectContaining({
        actor: { kind: "reviewer", id: "carol" },
        data: expect.objectContaining({
          verdict: "concern",
          note: "no incident INC-4711 on record",
          channel: "console",
        }),
      }),
    ]);
    const html = await (await carol.get(`/console/requests/${id}`)).text();
    expect(html).toContain("Reviewed by <strong>carol</strong>");
    expect(html).toContain("no incident INC-4711 on record");
    expect(html).not.toContain(formOf(id));
    expect(html).toContain("Concern raised after the fact by carol");
    expect(await (await carol.get("/console/after-review")).text()).not.toContain(id);

    const again = await carol.post(`/console/requests/${id}/review-after`, {
      csrf,
      verdict: "ok",
    });
    expect(again.status).toBe(409);
    expect(await again.text()).toContain("already_reviewed_after");
  });

  it("refuses forged, hostile and ineligible posts and records nothing", async () => {
    const id = await issued();
    const carol = await signedIn("carol");
    const csrf = await carol.csrf();
    const bob = await signedIn("bob");
    const bobsToken = await bob.csrf();
    for (const form of [
      { verdict: "ok" },
      { csrf: "", verdict: "ok" },
      { csrf: bobsToken, verdict: "ok" },
    ]) {
      expect((await carol.post(`/console/requests/${id}/review-after`, form)).status).toBe(400);
    }
    const crossSite = await carol.post(
      `/console/requests/${id}/review-after`,
      { csrf, verdict: "ok" },
      { origin: "https://evil.example" },
    );
    expect(crossSite.status).toBe(400);
    for (const form of [
      { csrf },
      { csrf, verdict: "maybe" },
      { csrf, verdict: "concern" },
      { csrf, verdict: "concern", note: "   " },
      { csrf, verdict: "concern", note: "\u200B\u2060" },
      { csrf, verdict: "concern", note: "a\u202Eb" },
      { csrf, verdict: "concern", note: "x".repeat(2001) },
    ]) {
      const res = await carol.post(`/console/requests/${id}/review-after`, form);
      expect(res.status, JSON.stringify(form)).toBe(400);
    }
    expect(
      (
        await carol.post(
          `/console/requests/${id}/review-after`,
          `csrf=${csrf}&verdict=ok&verdict=concern`,
        )
      ).status,
    ).toBe(400);
    expect(
      (
        await carol.post(`/console/requests/${id}/review-after`, {
          csrf,
          verdict: "ok",
          note: "x".repeat(20_000),
        })
      ).status,
    ).toBe(413);
    const alice = await signedIn("alice");
    const own = await alice.post(`/console/requests/${id}/review-after`, {
      csrf: await alice.csrf(),
      verdict: "ok",
    });
    expect(own.status).toBe(403);
    expect(await own.text()).toContain("self_approval_forbidden");
    const dana = await signedIn("dana");
    const auditor = await dana.post(`/console/requests/${id}/review-after`, {
      csrf: await dana.csrf(),
      verdict: "ok",
    });
    expect(auditor.status).toBe(403);
    expect(await reviewedAfter(id)).toEqual([]);
  });
});
