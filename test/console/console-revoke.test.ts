import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  issuedToken,
  keyOf,
  readRequest,
  S3_READ,
  UNKNOWN_REQUEST_ID,
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

async function signedIn(id: string): Promise<ConsoleClient> {
  const client = new ConsoleClient(t);
  expect((await client.signIn(keyOf(t, id))).status).toBe(303);
  return client;
}

const revokeForm = (id: string) => `action="/console/requests/${id}/revoke"`;

/** Collects as the requesting agent. */
async function collect(id: string) {
  return t.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(t, "report-agent") });
}

describe("console revocation", () => {
  it("offers Revoke to reviewers and auditors on approved and issued requests only", async () => {
    const approved = await createRequest(t, S3_READ);
    const issued = await issuedToken(t);
    const pending = await createRequest(t, CUSTOMERS_EXPORT);
    const used = await issuedToken(t);
    await t.call("POST", "/v1/tokens/consume", {
      key: keyOf(t, "billing-api"),
      body: { token: used.token },
    });
    // alice owns the agent: she may not review its requests, but may still end them.
    for (const person of ["bob", "alice", "dana"]) {
      const client = await signedIn(person);
      for (const id of [approved.id, issued.id]) {
        const html = await (await client.get(`/console/requests/${id}`)).text();
        expect(html, `${person} ${id}`).toContain(revokeForm(id));
        expect(html).toMatch(/<textarea name="reason" required=""? maxlength="2000"/);
      }
      for (const id of [pending.id, used.id]) {
        const html = await (await client.get(`/console/requests/${id}`)).text();
        expect(html, `${person} ${id}`).not.toContain(revokeForm(id));
      }
    }
  });

  it("stops an approved request before it is collected, and shows it on the page", async () => {
    const { id } = await createRequest(t, S3_READ);
    const bob = await signedIn("bob");
    const page = await (await bob.get(`/console/requests/${id}`)).text();
    expect(page).toContain("the agent can no longer collect a credential");
    const res = await bob.post(`/console/requests/${id}/revoke`, {
      csrf: ConsoleClient.csrfOf(page),
      reason: "agent under review",
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/console/requests/${id}`);

    const after = await (await bob.get(`/console/requests/${id}`)).text();
    expect(after).toContain("You revoked this request at 2026-01-15 09:00:00 UTC.");
    expect(after).toContain("status-revoked");
    expect(after).toContain("Revoked by bob");
    expect(after).toContain("agent under review");
    expect(after).not.toContain(revokeForm(id));
    await expectError(await collect(id), 410, "request_revoked");
    const [event] = await allEvents(t, { request_id: id, type: "credential.revoked" });
    expect(event).toMatchObject({
      actor: { kind: "reviewer", id: "bob" },
      data: { previous_status: "approved", credential_id: null, reason: "agent under review" },
    });
  });

  it("ends an issued credential for an auditor: its token no longer consumes", async () => {
    const { id, token } = await issuedToken(t);
    const dana = await signedIn("dana");
    const page = await (await dana.get(`/console/requests/${id}`)).text();
    expect(page).toContain("Ends the credential now");
    const res = await dana.post(`/console/requests/${id}/revoke`, {
      csrf: ConsoleClient.csrfOf(page),
      reason: "token pasted in a ticket",
    });
    expect(res.status).toBe(303);
    expect((await readRequest(t, id)).status).toBe("revoked");
    const consume = await t.call("POST", "/v1/tokens/consume", {
      key: keyOf(t, "billing-api"),
      body: { token },
    });
    await expectError(consume, 401, "token_invalid");
    const [event] = await allEvents(t, { request_id: id, type: "credential.revoked" });
    expect(event).toMatchObject({
      actor: { kind: "auditor", id: "dana" },
      data: { previous_status: "issued", reason: "token pasted in a ticket" },
    });
  });

  it("refuses forms without the session's CSRF token or from another site, and changes nothing", async () => {
    const { id } = await createRequest(t, S3_READ);
    const bob = await signedIn("bob");
    const carol = await signedIn("carol");
    const carolsToken = await carol.csrf();
    for (const form of [
      { reason: "x" },
      { csrf: "", reason: "x" },
      { csrf: "x".repeat(43), reason: "x" },
      { csrf: carolsToken, reason: "x" },
    ]) {
      const res = await bob.post(`/console/requests/${id}/revoke`, form);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("The form has expired or did not come from this console.");
    }
    const csrf = await bob.csrf();
    const crossSite = await bob.post(
      `/console/requests/${id}/revoke`,
      { csrf, reason: "x" },
      { origin: "https://evil.example" },
    );
    expect(crossSite.status).toBe(400);
    const noSession = new ConsoleClient(t);
    const signedOut = await noSession.post(`/console/requests/${id}/revoke`, { csrf, reason: "x" });
    expect(signedOut.status).toBe(401);
    expect((await readRequest(t, id)).status).toBe("approved");
  });

  it("asks for a reason people can read, and refuses hostile and oversized input", async () => {
    const { id } = await createRequest(t, S3_READ);
    const bob = await signedIn("bob");
    const csrf = await bob.csrf();
    for (const form of [
      { csrf },
      { csrf, reason: "" },
      { csrf, reason: "   " },
      // Renders as nothing: no reason at all, as the API's schema says too.
      { csrf, reason: "\u200B\u2060" },
      { csrf, reason: "a\u202Eb" },
      { csrf, reason: "x".repeat(2001) },
    ]) {
      const res = await bob.post(`/console/requests/${id}/revoke`, form);
      expect(res.status, JSON.stringify(form.reason)).toBe(400);
      expect(await res.text()).toContain("validation_failed");
    }
    const twice = await bob.post(
      `/console/requests/${id}/revoke`,
      `csrf=${csrf}&reason=a&reason=b`,
    );
    expect(twice.status).toBe(400);
    const huge = await bob.post(`/console/requests/${id}/revoke`, {
      csrf,
      reason: "x".repeat(20_000),
    });
    expect(huge.status).toBe(413);
    const multipart = await bob.request("POST", `/console/requests/${id}/revoke`, {
      form: `csrf=${csrf}&reason=x`,
      headers: { "content-type": "multipart/form-data; boundary=x" },
    });
    expect(multipart.status).toBe(415);
    expect((await readRequest(t, id)).status).toBe("approved");
    expect(await allEvents(t, { request_id: id, type: "credential.revoked" })).toEqual([]);
  });

  it("shows the broker's refusals as approve and deny do, and ends nothing", async () => {
    const pending = await createRequest(t, CUSTOMERS_EXPORT);
    const dana = await signedIn("dana");
    const csrf = await dana.csrf();
    const revoke = (id: string) =>
      dana.post(`/console/requests/${id}/revoke`, { csrf, reason: "leaked" });

    const notYet = await revoke(pending.id);
    expect(notYet.status).toBe(409);
    const html = await notYet.text();
    expect(html).toContain("not_revocable");
    expect(html).toContain("the request is pending");
    expect(html).toContain('role="alert"');
    expect(html).toContain("Back to requests");

    const { id } = await createRequest(t, S3_READ);
    expect((await revoke(id)).status).toBe(303);
    const again = await revoke(id);
    expect(again.status).toBe(409);
    expect(await again.text()).toContain("the request is revoked");

    expect((await revoke(UNKNOWN_REQUEST_ID)).status).toBe(404);
    expect((await dana.post("/console/requests/req_%3Cscript%3E/revoke", { csrf })).status).toBe(
      404,
    );

    // No audit, no revocation: the credential stays issued, and the page says why.
    const issued = await createRequest(t, S3_READ);
    await collectToken(t, issued.id);
    await t.writ.auditLog.close();
    const unrecorded = await revoke(issued.id);
    expect(unrecorded.status).toBe(503);
    expect(await unrecorded.text()).toContain("audit_unavailable");
    expect((await readRequest(t, issued.id)).status).toBe("issued");
  });
});
