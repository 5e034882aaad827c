import { cp } from "node:fs/promises";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEMO_POLICIES_DIR, tempPolicies } from "../policy/temp-policies.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  expectError,
  expectJson,
  keyOf,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

// A guardrail added while requests are open reaches them too: a request the
// policies in force now deny gets no credential, whatever it was decided before.

const INCIDENT_FREEZE = `
@id("incident-freeze")
forbid (principal, action, resource)
when { resource.uri like "*demo-reports*" || resource.uri like "db://prod/*" };
`;

describe("collecting under the policies in force now", () => {
  let t: TestWrit;
  let policies: Awaited<ReturnType<typeof tempPolicies>>;

  beforeEach(async () => {
    policies = await tempPolicies({});
    await cp(join(DEMO_POLICIES_DIR, "demo.cedar"), join(policies.dir, "demo.cedar"));
    await cp(join(DEMO_POLICIES_DIR, "guardrails.cedar"), join(policies.dir, "guardrails.cedar"));
    t = await startTestWrit({ policies: { dir: policies.dir, watch: false } });
  });

  afterEach(async () => {
    await t.close();
    await policies.remove();
  });

  /** Loads the directory again, as the watch does after a save. */
  const reload = () =>
    (t.writ.broker.deps.policy as unknown as { reload(): Promise<void> }).reload();

  /** Adds the freeze and reloads. */
  async function freeze(): Promise<void> {
    await policies.write("freeze.cedar", INCIDENT_FREEZE);
    await reload();
  }

  const collect = (id: string) =>
    t.call("POST", `/v1/requests/${id}/credential`, { key: keyOf(t, "report-agent") });

  it("denies a request allowed before the guardrail, minting nothing", async () => {
    const { id } = await createRequest(t, S3_READ);
    await freeze();
    const refused = await expectError(await collect(id), 403, "policy_denied");
    expect(refused.details).toEqual({ request_id: id, policies: ["incident-freeze"] });
    const events = await allEvents(t, { request_id: id });
    expect(events.map((e) => e.type)).toEqual([
      "request.created",
      "request.decided",
      "request.approved",
      "request.denied",
    ]);
    expect(events.at(-1)).toMatchObject({
      actor: { kind: "system" },
      data: { by: "policy", policies: ["incident-freeze"], previous_status: "approved" },
    });
    // Denied for good: a second collect says so, and nothing was ever issued.
    await expectError(await collect(id), 403, "request_denied");
    const read = await t.call("GET", `/v1/requests/${id}`, { key: keyOf(t, "report-agent") });
    expect(await expectJson(read, 200)).toMatchObject({ status: "denied" });
  });

  it("denies a request reviewers approved before or after the guardrail", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await approveAs(t, "bob", id);
    await freeze();
    await approveAs(t, "carol", id);
    await expectError(await collect(id), 403, "policy_denied");
    const types = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(types).not.toContain("credential.issued");
    expect(types.at(-1)).toBe("request.denied");
  });

  it("denies a request the policies now ask more of: approvals it lacks, a reason it did not give", async () => {
    const stricter = {
      approval: `@id("reads-reviewed") @approvers("data-owners")
permit (principal, action == Action::"s3:GetObject", resource);`,
      reason: `@id("reads-explained") @reason("required")
permit (principal, action == Action::"s3:GetObject", resource);`,
    };
    for (const [requires, policy] of Object.entries(stricter)) {
      await policies.write("stricter.cedar", `// none\n`);
      await reload();
      // Allowed at once, with no reason, under the demo policies.
      const { id } = await createRequest(t, S3_READ);
      await policies.write("stricter.cedar", policy);
      await reload();
      const refused = await expectError(await collect(id), 403, "policy_denied");
      expect(refused.details).toMatchObject({ request_id: id, requires });
      expect(refused.message).toContain("ask again");
      const events = await allEvents(t, { request_id: id });
      expect(events.at(-1)).toMatchObject({
        type: "request.denied",
        data: { by: "policy", previous_status: "approved", requires },
      });
      expect(events.map((e) => e.type)).not.toContain("credential.issued");
    }
  });

  it("keeps a request whose approvals meet the policies in force now", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await approveAs(t, "bob", id);
    await approveAs(t, "carol", id);
    // An unrelated change: the export's own terms are what they were.
    await policies.write(
      "other.cedar",
      `@id("other") @approvers("data-owners") permit (principal, action == Action::"s3:PutObject", resource);`,
    );
    await reload();
    await expectJson(await collect(id), 200);
  });

  it("changes nothing for requests the policies in force now still allow", async () => {
    const { id } = await createRequest(t, S3_READ);
    await policies.write(
      "freeze.cedar",
      `@id("other-freeze")\nforbid (principal, action, resource) when { resource.uri like "db://*" };\n`,
    );
    await reload();
    await expectJson(await collect(id), 200);
  });

  it("mints with a TTL the policies in force now lowered, and never lengthens one", async () => {
    // Asked for 120 and 30 seconds under the demo policies, which allow either.
    const longer = await createRequest(t, { ...S3_READ, ttl_seconds: 120 });
    const shorter = await createRequest(t, { ...S3_READ, ttl_seconds: 30 });
    await policies.write(
      "incident.cedar",
      `@id("reads-short") @ttl("60")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::demo-reports/*" };`,
    );
    await reload();
    for (const [request, ttlSeconds] of [
      [longer, 60],
      [shorter, 30],
    ] as const) {
      const claims = decodeJwt(await collectToken(t, request.id));
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(ttlSeconds);
      const issued = (await allEvents(t, { request_id: request.id })).find(
        (e) => e.type === "credential.issued",
      );
      expect(issued?.data).toMatchObject({
        ttl_seconds: ttlSeconds,
        expires_at: new Date((claims.exp ?? 0) * 1000).toISOString(),
      });
      const read = await t.call("GET", `/v1/requests/${request.id}`, {
        key: keyOf(t, "report-agent"),
      });
      expect(await expectJson(read, 200)).toMatchObject({ ttl_seconds: ttlSeconds });
    }
  });
});
