import { rename, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectJson,
  keyOf,
  type RequestBody,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { ConsoleClient } from "./console-client.js";

let t: TestWrit;

beforeEach(async () => {
  t = await startTestWrit();
});

afterEach(async () => {
  await t.close();
});

async function signedIn(id: string, headers?: Record<string, string>): Promise<ConsoleClient> {
  const client = new ConsoleClient(t, headers);
  const res = await client.signIn(keyOf(t, id));
  expect(res.status).toBe(303);
  expect(res.headers.get("location")).toBe("/console/requests");
  return client;
}

async function statusOf(id: string): Promise<RequestBody> {
  return expectJson<RequestBody>(
    await t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, "dana") }),
    200,
  );
}

describe("console sign-in", () => {
  it("sends anyone signed out to the sign-in form, with strict headers", async () => {
    const client = new ConsoleClient(t);
    for (const path of [
      "/console",
      "/console/requests",
      "/console/pending",
      "/console/after-review",
      "/console/integrity",
    ]) {
      const res = await client.get(path);
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location")).toBe("/console/login");
    }
    const page = await client.get("/console/login");
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/ style=/i);
    const cookie = client.lastSetCookies.find((c) => c.startsWith("writ_console_login="));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/console/);
  });

  it("signs in reviewers and auditors with an HttpOnly, SameSite=Strict session cookie", async () => {
    for (const id of ["bob", "dana"]) {
      const client = await signedIn(id);
      const cookie = client.lastSetCookies.find((c) => c.startsWith("writ_console="));
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      // Plain http on loopback, as `writ dev` runs; secure cookies: console-cookies.test.ts.
      expect(cookie).not.toMatch(/Secure/);
      const list = await client.get("/console/requests");
      expect(list.status).toBe(200);
      expect(await list.text()).toContain(`${id} (`);
    }
  });

  it("refuses agent and resource server keys, unknown keys, and never echoes the key", async () => {
    const cases: [string, number, string][] = [
      [keyOf(t, "report-agent"), 403, "Only reviewer and auditor keys"],
      [keyOf(t, "billing-api"), 403, "Only reviewer and auditor keys"],
      [`writ_reviewer_${"A".repeat(43)}`, 401, "The key is not valid."],
      ["x".repeat(5000), 401, "The key is not valid."],
    ];
    for (const [key, status, message] of cases) {
      const client = new ConsoleClient(t);
      const res = await client.signIn(key);
      const html = await res.text();
      expect(res.status).toBe(status);
      expect(html).toContain(message);
      expect(html).not.toContain(key);
      expect(client.cookies.has("writ_console")).toBe(false);
      expect((await client.get("/console/requests")).status).toBe(303);
    }
  });

  it("refuses a sign-in without the form's token, or from another origin", async () => {
    const client = new ConsoleClient(t);
    await client.get("/console/login");
    const key = keyOf(t, "bob");
    expect((await client.post("/console/login", { key })).status).toBe(403);
    expect((await client.post("/console/login", { key, csrf: "forged" })).status).toBe(403);
    const page = await client.get("/console/login");
    const csrf = ConsoleClient.csrfOf(await page.text());
    const crossSite = await client.post(
      "/console/login",
      { key, csrf },
      { origin: "https://evil.example" },
    );
    expect(crossSite.status).toBe(403);
    expect(client.cookies.has("writ_console")).toBe(false);
  });

  it("asks again from its own origin for a page opened from another site, without script", async () => {
    const navigation = { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" };
    const path = '/console/requests?agent=a"><b>x';
    const client = new ConsoleClient(t, navigation);
    const res = await client.get(path);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    const refresh = /<meta http-equiv="refresh" content="([^"]*)"/.exec(html)?.[1];
    expect(refresh).toBe("0; url=/console/requests?agent=a%22%3E%3Cb%3Ex");
    expect(html).not.toMatch(/<script|<b>/i);
    // A cookie that came along is answered as always: it was not kept back.
    client.cookies.set("writ_console", "stale".padEnd(43, "A"));
    const stale = await client.get("/console/requests");
    expect(stale.status).toBe(303);
    expect(stale.headers.get("location")).toBe("/console/login");
  });

  it("gives a fresh session id at sign-in, ends it at sign-out, and after idling", async () => {
    const client = new ConsoleClient(t);
    client.cookies.set("writ_console", "planted".padEnd(43, "A"));
    expect((await client.signIn(keyOf(t, "bob"))).status).toBe(303);
    const first = client.cookies.get("writ_console");
    expect(first).not.toBe("planted".padEnd(43, "A"));
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const csrf = await client.csrf();
    expect((await client.post("/console/logout", {})).status).toBe(400);
    expect((await client.post("/console/logout", { csrf })).status).toBe(303);
    client.cookies.set("writ_console", first as string);
    expect((await client.get("/console/requests")).status).toBe(303);

    const idle = await signedIn("carol");
    t.clock.advance(1799);
    expect((await idle.get("/console/requests")).status).toBe(200);
    t.clock.advance(1800);
    expect((await idle.get("/console/requests")).status).toBe(303);
  });
});

describe("console reviews", () => {
  it("lets reviewers approve with the same rules as the API, and records channel console", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    const page = await bob.get(`/console/requests/${id}`);
    const html = await page.text();
    expect(html).toContain("Approve");
    const csrf = ConsoleClient.csrfOf(html);
    const approved = await bob.post(`/console/requests/${id}/approve`, { csrf, comment: "ok" });
    expect(approved.status).toBe(303);
    expect(approved.headers.get("location")).toBe(`/console/requests/${id}`);
    expect((await bob.get(`/console/requests/${id}`)).status).toBe(200);
    const again = await bob.post(`/console/requests/${id}/approve`, { csrf });
    expect(again.status).toBe(409);
    expect(await again.text()).toContain("already_reviewed");

    const carol = await signedIn("carol");
    await carol.post(`/console/requests/${id}/approve`, { csrf: await carol.csrf() });
    expect((await statusOf(id)).status).toBe("approved");
    const grants = await allEvents(t, { request_id: id, type: "approval.granted" });
    expect(grants.map((e) => [e.actor.id, e.data.channel])).toEqual([
      ["bob", "console"],
      ["carol", "console"],
    ]);
  });

  it("offers a reviewer who approved only the Deny form, which still ends the request", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    await bob.post(`/console/requests/${id}/approve`, { csrf: await bob.csrf() });
    const html = await (await bob.get(`/console/requests/${id}`)).text();
    expect(html).toContain("Until it is decided you can still deny it.");
    expect(html).toContain(`action="/console/requests/${id}/deny"`);
    expect(html).not.toContain(`action="/console/requests/${id}/approve"`);
    // The approval deadline is shown while it applies, and not once the request ends.
    expect(html).toContain("Approve by");
    // Nor is the request listed as waiting for bob.
    const pending = await (await bob.get("/console/pending")).text();
    expect(pending).toContain("Waiting for others");
    expect(pending).not.toContain(`action="/console/requests/${id}/approve"`);

    const csrf = ConsoleClient.csrfOf(html);
    const denied = await bob.post(`/console/requests/${id}/deny`, { csrf, reason: "wrong table" });
    expect(denied.status).toBe(303);
    expect((await statusOf(id)).status).toBe("denied");
    const after = await (await bob.get(`/console/requests/${id}`)).text();
    expect(after).not.toContain("Approve by");
    expect(after).toContain("You denied this request");
  });

  it("tells reviewers what they did from the record, never from the address", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    const carol = await signedIn("carol");
    // A link anyone can send must not make the request look reviewed already.
    for (const done of ["approved", "denied", "revoked"]) {
      const forged = await (await carol.get(`/console/requests/${id}?done=${done}`)).text();
      expect(forged, done).not.toContain('class="card notice"');
      expect(forged, done).not.toMatch(/Your (approval|denial|revocation) was recorded/);
    }

    t.clock.advance(60);
    const approved = await bob.post(`/console/requests/${id}/approve`, { csrf: await bob.csrf() });
    expect(approved.status).toBe(303);
    const location = approved.headers.get("location") as string;
    const own = await (await bob.get(location)).text();
    expect(own).toContain("You approved this request at 2026-01-15 09:01:00 UTC.");
    // Carol did nothing: the same page, through any address, says nothing about her.
    for (const path of [location, `/console/requests/${id}?done=approved`]) {
      const theirs = await (await carol.get(path)).text();
      expect(theirs, path).not.toContain('class="card notice"');
    }

    const s3 = await createRequest(t, S3_READ);
    t.clock.advance(60);
    const revoked = await carol.post(`/console/requests/${s3.id}/revoke`, {
      csrf: await carol.csrf(),
      reason: "not needed",
    });
    expect(revoked.status).toBe(303);
    const after = await (await carol.get(revoked.headers.get("location") as string)).text();
    expect(after).toContain("You revoked this request at 2026-01-15 09:02:00 UTC.");
    const dana = await signedIn("dana");
    const forged = await (await dana.get(`/console/requests/${s3.id}?done=revoked`)).text();
    expect(forged).not.toContain('class="card notice"');
  });

  it("never lets the agent's owner review its request, whatever the form", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const alice = await signedIn("alice");
    const html = await (await alice.get(`/console/requests/${id}`)).text();
    expect(html).toContain("you cannot review its request");
    expect(html).not.toContain(`/console/requests/${id}/approve`);
    const csrf = ConsoleClient.csrfOf(html);
    const forced = await alice.post(`/console/requests/${id}/approve`, { csrf });
    expect(forced.status).toBe(403);
    expect(await forced.text()).toContain("self_approval_forbidden");
    const pending = await (await alice.get("/console/pending")).text();
    expect(pending).toContain("Nothing is waiting for you.");
    expect((await statusOf(id)).reviews).toEqual([]);
  });

  it("refuses forms without the session's CSRF token, and changes nothing", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    const carol = await signedIn("carol");
    const carolsToken = await carol.csrf();
    for (const form of [{}, { csrf: "" }, { csrf: "x".repeat(43) }, { csrf: carolsToken }]) {
      const res = await bob.post(`/console/requests/${id}/approve`, form);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("The form has expired or did not come from this console.");
    }
    const csrf = await bob.csrf();
    const crossSite = await bob.post(
      `/console/requests/${id}/deny`,
      { csrf, reason: "x" },
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(400);
    const noSession = new ConsoleClient(t);
    expect((await noSession.post(`/console/requests/${id}/approve`, { csrf })).status).toBe(401);
    expect((await statusOf(id)).reviews).toEqual([]);
  });

  it("refuses a post without a session with 401 before reading its form, whatever it holds", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const noSession = new ConsoleClient(t);
    const paths = [
      `/console/requests/${id}/approve`,
      `/console/requests/${id}/deny`,
      `/console/requests/${id}/revoke`,
      "/console/integrity/verify",
      "/console/logout",
    ];
    for (const path of paths) {
      for (const [form, headers] of [
        [{ csrf: "x", reason: "x".repeat(20_000) }, {}],
        ["a", { "content-type": "multipart/form-data; boundary=x" }],
      ] as const) {
        const res = await noSession.request("POST", path, { form, headers });
        expect(res.status, path).toBe(401);
        expect(await res.text()).toContain("unauthenticated");
      }
    }
    expect((await statusOf(id)).reviews).toEqual([]);
  });

  it("asks for a reason to deny, and refuses auditors, hostile and oversized input", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    const csrf = await bob.csrf();
    expect((await bob.post(`/console/requests/${id}/deny`, { csrf, reason: "  " })).status).toBe(
      400,
    );
    expect(
      (await bob.post(`/console/requests/${id}/deny`, { csrf, reason: "a\u202Eb" })).status,
    ).toBe(400);
    expect(
      (await bob.post(`/console/requests/${id}/approve`, `csrf=${csrf}&comment=a&comment=b`))
        .status,
    ).toBe(400);
    expect(
      (await bob.post(`/console/requests/${id}/approve`, { csrf, comment: "x".repeat(20_000) }))
        .status,
    ).toBe(413);
    const multipart = await bob.request("POST", `/console/requests/${id}/approve`, {
      form: `csrf=${csrf}`,
      headers: { "content-type": "multipart/form-data; boundary=x" },
    });
    expect(multipart.status).toBe(415);
    expect((await bob.post("/console/requests/req_%3Cscript%3E/approve", { csrf })).status).toBe(
      404,
    );
    const dana = await signedIn("dana");
    const byAuditor = await dana.post(`/console/requests/${id}/approve`, {
      csrf: await dana.csrf(),
    });
    expect(byAuditor.status).toBe(403);
    expect(await byAuditor.text()).toContain("wrong_principal_kind");
    expect((await statusOf(id)).reviews).toEqual([]);

    const denied = await bob.post(`/console/requests/${id}/deny`, { csrf, reason: "not now" });
    expect(denied.status).toBe(303);
    expect((await statusOf(id)).status).toBe("denied");
  });
});

describe("console pages", () => {
  it("lists with filters and paging, and rejects bad filters", async () => {
    for (let i = 0; i < 3; i++) await createRequest(t, S3_READ);
    const exported = await createRequest(t, {
      ...CUSTOMERS_EXPORT,
      reason: "<script>alert(1)</script>",
    });
    const dana = await signedIn("dana");
    const pending = await (await dana.get("/console/requests?status=pending")).text();
    expect(pending).toContain(exported.id);
    expect(pending).not.toContain("<script>alert(1)</script>");
    expect(pending).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    const reads = await (await dana.get("/console/requests?action=s3%3AGetObject")).text();
    expect(reads).not.toContain(exported.id);
    expect(reads.match(/status-approved/g)?.length).toBe(3);
    const none = await (await dana.get("/console/requests?since=2030-01-01T00%3A00")).text();
    expect(none).toContain("No requests match.");
    for (const bad of [
      "status=nope",
      "agent=%3Cscript%3E",
      "action=a%20b",
      "since=yesterday",
      "cursor=-1",
    ]) {
      const res = await dana.get(`/console/requests?${bad}`);
      expect(res.status, bad).toBe(400);
      expect(await res.text()).not.toContain("<script>");
    }
  });

  it("filters by a workload identity's agent id, as by a configured agent's", async () => {
    await createRequest(t, S3_READ);
    const dana = await signedIn("dana");
    const res = await dana.get("/console/requests?agent=gh%3Aacme%2Freports");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("No requests match.");
  });

  it("refuses a day or hour that does not exist rather than rolling it over", async () => {
    const dana = await signedIn("dana");
    for (const bad of [
      "since=2026-02-30T00%3A00",
      "until=2026-04-31T09%3A30",
      "since=2026-02-29T00%3A00Z",
      "until=2026-01-15T24%3A00",
      "since=2026-01-15T24%3A00%3A00Z",
    ]) {
      const res = await dana.get(`/console/requests?${bad}`);
      expect(res.status, bad).toBe(400);
      expect(await res.text(), bad).toContain("is no such day or time");
    }
    // A leap day that exists, and the last second of a day, are taken as written.
    for (const good of ["since=2024-02-29T00%3A00", "until=2026-01-15T23%3A59%3A59Z"]) {
      expect((await dana.get(`/console/requests?${good}`)).status, good).toBe(200);
    }
  });

  it("says on the timeline who denied a request and why, or which policies did", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    await bob.post(`/console/requests/${id}/deny`, {
      csrf: await bob.csrf(),
      reason: "not this quarter",
    });
    const byReviewer = await (await bob.get(`/console/requests/${id}`)).text();
    const denied = byReviewer.slice(byReviewer.lastIndexOf("Denied"));
    expect(denied).toContain("bob");
    expect(denied).toContain("not this quarter");

    const forbidden = await t.call("POST", "/v1/requests", {
      key: keyOf(t, "report-agent"),
      body: {
        action: "iam:AttachRolePolicy",
        resource: "arn:aws:iam::111122223333:role/admin",
        audience: "billing-api",
      },
    });
    const refused = (await forbidden.json()) as { error: { details: { request_id: string } } };
    const byPolicy = await (
      await bob.get(`/console/requests/${refused.error.details.request_id}`)
    ).text();
    const policyDenial = byPolicy.slice(byPolicy.lastIndexOf("Denied by policy"));
    expect(policyDenial).toContain("no-iam-attach-role-policy");
  });

  it("shows a request's whole story on its timeline", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const bob = await signedIn("bob");
    await bob.post(`/console/requests/${id}/approve`, { csrf: await bob.csrf(), comment: "fine" });
    const carol = await signedIn("carol");
    await carol.post(`/console/requests/${id}/approve`, { csrf: await carol.csrf() });
    const token = await collectToken(t, id);
    const consume = () =>
      t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
    expect((await consume()).status).toBe(200);
    expect((await consume()).status).toBe(409);

    const html = await (await carol.get(`/console/requests/${id}`)).text();
    const order = [
      "Requested",
      "Decided by policy: approve",
      "customers-export",
      "Approved by bob",
      "fine",
      "Approved by carol",
      "Credential issued",
      "Used by billing-api",
      "Replay blocked",
    ];
    let at = 0;
    for (const text of order) {
      const next = html.indexOf(text, at);
      expect(next, text).toBeGreaterThan(-1);
      at = next;
    }
    expect(html).not.toContain(token);
  });

  it("shows the log's integrity and verifies it on demand", async () => {
    await createRequest(t, S3_READ);
    const dana = await signedIn("dana");
    const before = await (await dana.get("/console/integrity")).text();
    expect(before).toContain("Not verified since this writ started.");
    expect(before).toContain("Last signed checkpoint");
    const verified = await dana.post("/console/integrity/verify", {
      csrf: ConsoleClient.csrfOf(before),
    });
    expect(verified.status).toBe(303);
    const after = await (await dana.get("/console/integrity")).text();
    expect(after).toMatch(/Verified: \d+ entries/);
    expect((await dana.post("/console/integrity/verify", {})).status).toBe(400);
  });
});

describe("console log integrity under damage", () => {
  it("reports a log it cannot read as a failed check, never the last success", async () => {
    await createRequest(t, S3_READ);
    const dana = await signedIn("dana");
    const csrf = await dana.csrf();
    expect((await dana.post("/console/integrity/verify", { csrf })).status).toBe(303);
    expect(await (await dana.get("/console/integrity")).text()).toMatch(/Verified: \d+ entries/);

    // The segment's name now leads nowhere: a deleted file behind a link left in its place.
    const segment = t.writ.auditFile?.path as string;
    await rename(segment, `${segment}.moved`);
    await symlink(join(t.dataDir, "nowhere"), segment);
    const verified = await dana.post("/console/integrity/verify", { csrf });
    expect(verified.status).toBe(303);
    const page = await (await dana.get("/console/integrity")).text();
    expect(page).not.toMatch(/Verified: \d+ entries/);
    expect(page).toContain("Verification failed");
    expect(page).toContain("ENOENT");
    expect(page).not.toContain(t.dataDir);
  });
});

describe("GET /v1/audit/checkpoint-key", () => {
  it("serves the public key to anyone, without the private part", async () => {
    const res = await t.call("GET", "/v1/audit/checkpoint-key");
    const body = await expectJson<{ key_id: string; jwk: Record<string, string> }>(res, 200);
    expect(body.jwk).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", kid: body.key_id });
    expect(body.jwk.d).toBeUndefined();
    expect(t.writ.auditFile?.lastCheckpoint()?.key_id).toBe(body.key_id);
    const jwt = t.writ.keys.jwks().keys.map((k) => (k as { x?: string }).x);
    expect(jwt).not.toContain(body.jwk.x);
  });
});
