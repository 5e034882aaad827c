import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempPolicies } from "../../policy/temp-policies.js";
import {
  allEvents,
  allRequests,
  type EventBody,
  expectError,
  expectJson,
  keyOf,
} from "../../support/api.js";
import { closedUrl, stsClientTo } from "../../support/aws-clients.js";
import { policyDocumentOf } from "../../support/aws-policy.js";
import { capturingLogger } from "../../support/captured-log.js";
import {
  type FakeAws,
  startFakeAws,
  TEST_ACCESS_KEY_ID,
  TEST_REGION,
  TEST_SECRET_ACCESS_KEY,
} from "../../support/fake-aws.js";
import { ManualClock, startTestWrit, type TestWrit } from "../../support/harness.js";

// The whole path through writ's HTTP API, the real STS/IAM SDK clients and a
// loopback server speaking the AWS Query protocol with SigV4 checked.

const ACCOUNT = "111122223333";
const role = (name: string) => `arn:aws:iam::${ACCOUNT}:role/${name}`;
const LONG_IPV6 = (i: number) => `2001:0db8:85a3:0000:0000:8a2e:${String(1000 + i)}:7334/128`;
const twentyCidrs = (offset: number) =>
  Array.from({ length: 20 }, (_, i) => LONG_IPV6(i + offset)).join(",");

const POLICIES = `
@id("reports-read")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::reports/*" };

@id("orders-read") @ttl("3600")
permit (principal, action == Action::"dynamodb:GetItem", resource)
when { resource.uri like "arn:aws:dynamodb:*" };

@id("uploads-from-office") @aws_source_ip("203.0.113.0/24, 2001:db8::/32")
permit (principal, action == Action::"s3:PutObject", resource)
when { resource.uri like "arn:aws:s3:::uploads/*" };

@id("lab") permit (principal, action, resource) when { context.data has lab };

@id("lab-wide-1") @aws_source_ip("${twentyCidrs(0)}")
permit (principal, action, resource) when { context.data has wide };

@id("lab-wide-2") @aws_source_ip("${twentyCidrs(20)}")
permit (principal, action, resource) when { context.data has wide };

@id("approved-reads") @approvers("data-owners") @quorum("2")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::vault/*" };
`;

const AWS_CONFIG = {
  region: TEST_REGION,
  session_duration_seconds: 3600,
  roles: [
    {
      resource_pattern: "arn:aws:s3:::reports/*",
      role_arn: role("writ-reports"),
      external_id: "writ-external-1",
    },
    { account: ACCOUNT, resource_pattern: "arn:aws:dynamodb:*", role_arn: role("writ-orders") },
    { resource_pattern: "arn:aws:s3:::uploads/*", role_arn: role("writ-uploads") },
    { resource_pattern: "arn:aws:s3:::lab*", role_arn: role("writ-lab") },
    { resource_pattern: "arn:aws:s3:::vault/*", role_arn: role("writ-vault") },
  ],
};

interface AwsCredentialBody {
  credential: {
    type: string;
    access_key_id: string;
    secret_access_key: string;
    session_token: string;
    expires_at: string;
  };
}

let fake: FakeAws;
let t: TestWrit;
let removePolicies: () => Promise<void>;
let policiesDir = "";
const clock = new ManualClock();
const { logger, lines: logLines } = capturingLogger();

const agentKey = () => keyOf(t, "report-agent");

async function ask(body: Record<string, unknown>) {
  return t.call("POST", "/v1/requests", { key: agentKey(), body: { credential: "aws", ...body } });
}

async function askAndCollect(body: Record<string, unknown>) {
  const request = await expectJson<{ id: string; ttl_seconds: number }>(await ask(body), 201);
  const collected = await expectJson<AwsCredentialBody>(
    await t.call("POST", `/v1/requests/${request.id}/credential`, { key: agentKey() }),
    200,
  );
  return { request, credential: collected.credential };
}

/** The first `type` event of a request, waiting (bounded) for it to be recorded. */
async function nextEvent(requestId: string, type: string) {
  const query = new URLSearchParams({ request_id: requestId, type, wait: "10" });
  const page = await expectJson<{ items: EventBody[] }>(
    await t.call("GET", `/v1/events?${query}`, { key: keyOf(t, "dana") }),
    200,
  );
  const event = page.items[0];
  if (event === undefined) throw new Error(`no ${type} for ${requestId}`);
  return event;
}

function expectNoSecrets(text: string, credential: AwsCredentialBody["credential"]) {
  expect(text).not.toContain(credential.secret_access_key);
  expect(text).not.toContain(credential.session_token);
  expect(text).not.toContain(TEST_SECRET_ACCESS_KEY);
}

function sessionOf(accessKeyId: string) {
  const session = fake.sessions.find((s) => s.accessKeyId === accessKeyId);
  if (session === undefined) throw new Error(`no session ${accessKeyId}`);
  return session;
}

beforeAll(async () => {
  fake = await startFakeAws({ now: () => clock.now() });
  const policies = await tempPolicies({ "aws.cedar": POLICIES });
  removePolicies = policies.remove;
  policiesDir = policies.dir;
  t = await startTestWrit(
    { aws: AWS_CONFIG, policies: { dir: policies.dir, watch: false } },
    { clock, logger, awsClients: fake.clients({ maxAttempts: 2 }) },
  );
});

afterAll(async () => {
  await t?.close();
  await fake?.close();
  await removePolicies?.();
});

describe("minting AWS credentials", () => {
  it("sends STS a session policy granting exactly the approved action on exactly the resource", async () => {
    const cases = [
      {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::reports/q3.csv",
        role: "writ-reports",
        ttl: 300,
        duration: 900,
        externalId: "writ-external-1",
      },
      {
        action: "dynamodb:GetItem",
        resource: `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/orders`,
        role: "writ-orders",
        ttl: 3600,
        duration: 3600,
        externalId: undefined,
      },
      {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::reports/2024/annual report.pdf",
        role: "writ-reports",
        ttl: 60,
        duration: 900,
        externalId: "writ-external-1",
      },
    ];
    for (const c of cases) {
      const assumeCalls = fake.calls.filter((call) => call.action === "AssumeRole").length;
      const { request, credential } = await askAndCollect({
        action: c.action,
        resource: c.resource,
        ...(c.ttl === 60 ? { ttl_seconds: 60 } : {}),
      });
      expect(request.ttl_seconds).toBe(c.ttl);
      expect(credential.type).toBe("aws");
      expect(credential.access_key_id).toMatch(/^ASIA/);
      const session = sessionOf(credential.access_key_id);
      expect(credential).toMatchObject({
        secret_access_key: session.secretAccessKey,
        session_token: session.sessionToken,
      });
      // The credential lives the approved TTL, even though STS's session is longer.
      expect(Date.parse(credential.expires_at)).toBe(
        Math.min(clock.now() + c.ttl * 1000, session.expiration),
      );
      expect(session.roleArn).toBe(role(c.role));
      expect(session.durationSeconds).toBe(c.duration);
      expect(session.sessionName).toBe(`writ-${request.id.slice(4)}`);
      expect(session.sourceIdentity).toBe("report-agent");
      expect(session.tags["writ-request"]).toBe(request.id);
      expect(session.tags["writ-grant"]).toMatch(/^g\d{10}_[A-Za-z0-9_-]{22}$/);
      expect(Object.keys(session.tags).sort()).toEqual(["writ-grant", "writ-request"]);
      const call = fake.calls.filter((x) => x.action === "AssumeRole")[assumeCalls];
      expect(call?.params.ExternalId).toBe(c.externalId);

      const policy = JSON.parse(session.policy ?? "") as unknown;
      expect(policy).toEqual({
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "WritGrant",
            Effect: "Allow",
            Action: c.action,
            Resource: c.resource,
            Condition: {
              DateLessThan: {
                "aws:CurrentTime": new Date(clock.now() + c.ttl * 1000)
                  .toISOString()
                  .replace(".000Z", "Z"),
              },
            },
          },
        ],
      });
      clock.advance(1);
    }
    expect(fake.signatureFailures).toEqual([]);
  });

  it("adds the source networks a policy names", async () => {
    const { credential } = await askAndCollect({
      action: "s3:PutObject",
      resource: "arn:aws:s3:::uploads/today.csv",
    });
    const policy = policyDocumentOf(sessionOf(credential.access_key_id).policy);
    expect(policy.Statement).toHaveLength(1);
    expect(policy.Statement[0]).toMatchObject({
      Effect: "Allow",
      Action: "s3:PutObject",
      Resource: "arn:aws:s3:::uploads/today.csv",
      Condition: { IpAddress: { "aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"] } },
    });
  });

  it("grants an object whose key has characters beyond Latin-1, which STS takes only escaped", async () => {
    const resource = "arn:aws:s3:::reports/2024/年次報告 – Zürich 📈.csv";
    const { credential } = await askAndCollect({ action: "s3:GetObject", resource });
    const text = sessionOf(credential.access_key_id).policy ?? "";
    expect(text).toMatch(/^[\x20-\xff]+$/);
    const policy = policyDocumentOf(text);
    expect(policy.Statement[0]).toMatchObject({ Action: "s3:GetObject", Resource: resource });
  });

  it("records the access key id and session name, never the secret", async () => {
    const { request, credential } = await askAndCollect({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/events.csv",
    });
    const events = await allEvents(t, { request_id: request.id });
    const issued = events.find((e) => e.type === "credential.issued");
    expect(issued?.data).toMatchObject({
      credential_type: "aws",
      credential_id: credential.access_key_id,
      session_name: `writ-${request.id.slice(4)}`,
      role_arn: role("writ-reports"),
      source_identity: "report-agent",
    });
    const status = await expectJson<{ credential: { id: string } }>(
      await t.call("GET", `/v1/requests/${request.id}`, { key: agentKey() }),
      200,
    );
    expect(status.credential.id).toBe(credential.access_key_id);
    const recorded =
      JSON.stringify(await allEvents(t)) + JSON.stringify(status) + JSON.stringify(logLines);
    expect(recorded).not.toContain(credential.secret_access_key);
    expect(recorded).not.toContain(credential.session_token);

    const again = await t.call("POST", `/v1/requests/${request.id}/credential`, {
      key: agentKey(),
    });
    await expectError(again, 410, "credential_already_issued");
  });

  it("waits for reviewers like any request, then mints", async () => {
    const pending = await expectJson<{ id: string; status: string }>(
      await ask({ action: "s3:GetObject", resource: "arn:aws:s3:::vault/secrets.csv" }),
      201,
    );
    expect(pending.status).toBe("pending");
    const before = fake.calls.length;
    await expectError(
      await t.call("POST", `/v1/requests/${pending.id}/credential`, { key: agentKey() }),
      409,
      "approval_pending",
    );
    expect(fake.calls.length).toBe(before);
    for (const reviewer of ["bob", "carol"]) {
      await t.call("POST", `/v1/requests/${pending.id}/approve`, {
        key: keyOf(t, reviewer),
        body: {},
      });
    }
    const collected = await expectJson<AwsCredentialBody>(
      await t.call("POST", `/v1/requests/${pending.id}/credential`, { key: agentKey() }),
      200,
    );
    expect(sessionOf(collected.credential.access_key_id).roleArn).toBe(role("writ-vault"));
  });

  const reloadPolicies = () =>
    (t.writ.broker.deps.policy as unknown as { reload(): Promise<void> }).reload();

  it("limits the session to the networks the policies in force now add", async () => {
    const incident = join(policiesDir, "incident.cedar");
    const request = await expectJson<{ id: string }>(
      await ask({ action: "s3:PutObject", resource: "arn:aws:s3:::uploads/late.csv" }),
      201,
    );
    try {
      await writeFile(
        incident,
        `@id("uploads-from-vpn") @aws_source_ip("198.51.100.0/24")
permit (principal, action == Action::"s3:PutObject", resource)
when { resource.uri like "arn:aws:s3:::uploads/*" };`,
      );
      await reloadPolicies();
      const { credential } = await expectJson<AwsCredentialBody>(
        await t.call("POST", `/v1/requests/${request.id}/credential`, { key: agentKey() }),
        200,
      );
      // Decided from the office; since then the VPN must be used too: both hold.
      const policy = policyDocumentOf(sessionOf(credential.access_key_id).policy);
      expect(policy.Statement).toEqual([
        expect.objectContaining({
          Effect: "Allow",
          Condition: expect.objectContaining({
            IpAddress: { "aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"] },
          }),
        }),
        expect.objectContaining({
          Effect: "Deny",
          Condition: { NotIpAddress: { "aws:SourceIp": ["198.51.100.0/24"] } },
        }),
      ]);
      const issued = await nextEvent(request.id, "credential.issued");
      expect(issued.data.aws_source_ips).toEqual([
        ["203.0.113.0/24", "2001:db8::/32"],
        ["198.51.100.0/24"],
      ]);
    } finally {
      await rm(incident, { force: true });
      await reloadPolicies();
    }
  });

  it("keeps the networks a request was decided under when the policies drop them", async () => {
    const request = await expectJson<{ id: string }>(
      await ask({ action: "s3:PutObject", resource: "arn:aws:s3:::uploads/early.csv" }),
      201,
    );
    const office = join(policiesDir, "aws.cedar");
    const before = await readFile(office, "utf8");
    try {
      await writeFile(office, before.replace(/@aws_source_ip\("203[^"]*"\)/, ""));
      await reloadPolicies();
      const { credential } = await expectJson<AwsCredentialBody>(
        await t.call("POST", `/v1/requests/${request.id}/credential`, { key: agentKey() }),
        200,
      );
      expect(policyDocumentOf(sessionOf(credential.access_key_id).policy).Statement).toEqual([
        expect.objectContaining({
          Condition: expect.objectContaining({
            IpAddress: { "aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"] },
          }),
        }),
      ]);
    } finally {
      await writeFile(office, before);
      await reloadPolicies();
    }
  });

  it("mints with a TTL the policies in force now lowered since the request", async () => {
    const reload = reloadPolicies;
    const incident = join(policiesDir, "incident.cedar");
    try {
      for (const { ttl, duration } of [
        { ttl: 1200, duration: 1200 },
        { ttl: 60, duration: 900 },
      ]) {
        // Granted 3600 seconds by orders-read; an incident policy then lowers it.
        await rm(incident, { force: true });
        await reload();
        const request = await expectJson<{ id: string; ttl_seconds: number }>(
          await ask({
            action: "dynamodb:GetItem",
            resource: `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/orders`,
          }),
          201,
        );
        expect(request.ttl_seconds).toBe(3600);
        await writeFile(
          incident,
          `@id("orders-read-incident") @ttl("${ttl}")
permit (principal, action == Action::"dynamodb:GetItem", resource)
when { resource.uri like "arn:aws:dynamodb:*" };`,
        );
        await reload();
        const { credential } = await expectJson<AwsCredentialBody>(
          await t.call("POST", `/v1/requests/${request.id}/credential`, { key: agentKey() }),
          200,
        );
        const notAfter = new Date(clock.now() + ttl * 1000);
        expect(credential.expires_at).toBe(notAfter.toISOString());
        const session = sessionOf(credential.access_key_id);
        expect(session.durationSeconds).toBe(duration);
        expect(policyDocumentOf(session.policy).Statement[0]).toMatchObject({
          Condition: {
            DateLessThan: { "aws:CurrentTime": notAfter.toISOString().replace(".000Z", "Z") },
          },
        });
        const issued = await nextEvent(request.id, "credential.issued");
        expect(issued.data).toMatchObject({
          ttl_seconds: ttl,
          expires_at: notAfter.toISOString(),
        });
        clock.advance(1);
      }
    } finally {
      await rm(incident, { force: true });
      await reload();
    }
  });
});

describe("checks at request time, before anything reaches STS", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      "an unknown action",
      { action: "s3:GetObjects", resource: "arn:aws:s3:::lab/x" },
      "unknown_aws_action",
    ],
    ["a wildcard action", { action: "s3:*", resource: "arn:aws:s3:::lab/x" }, "unknown_aws_action"],
    [
      "another spelling of a forbidden action",
      { action: "iam:attachrolepolicy", resource: `arn:aws:iam::${ACCOUNT}:role/app` },
      "unknown_aws_action",
    ],
    [
      "a service that does not exist",
      { action: "nosuch:GetObject", resource: "arn:aws:s3:::lab/x" },
      "unknown_aws_action",
    ],
    [
      "a bucket where an object is expected",
      { action: "s3:GetObject", resource: "arn:aws:s3:::lab" },
      "invalid_resource",
    ],
    [
      "a wildcard resource",
      { action: "s3:GetObject", resource: "arn:aws:s3:::lab/*" },
      "invalid_resource",
    ],
    [
      "a policy variable",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: IAM syntax, not a JS template
      { action: "s3:GetObject", resource: "arn:aws:s3:::lab/${aws:username}" },
      "invalid_resource",
    ],
    [
      "a resource of another service",
      { action: "s3:GetObject", resource: `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/x` },
      "invalid_resource",
    ],
    ["not an ARN", { action: "s3:GetObject", resource: "s3://lab/x" }, "invalid_resource"],
    [
      "a resource no role serves",
      { action: "s3:ListAllMyBuckets", resource: "*" },
      "aws_role_not_configured",
    ],
    [
      "a session policy over 2,048 characters",
      { action: "s3:GetObject", resource: `arn:aws:s3:::lab/${"k".repeat(900)}`, wide: true },
      "session_policy_too_large",
    ],
    [
      "a session policy over 2,048 characters once its key is escaped for STS",
      { action: "s3:GetObject", resource: `arn:aws:s3:::lab/${"報".repeat(350)}` },
      "session_policy_too_large",
    ],
  ];

  it.each(cases)("refuses %s with 422 and records nothing", async (_, input, code) => {
    const { wide, ...body } = input;
    const requestsBefore = (await allRequests(t)).length;
    const callsBefore = fake.calls.length;
    const res = await ask({ ...body, context: wide ? { wide: true } : { lab: true } });
    const error = await expectError(res, 422, code);
    expect(error.message.length).toBeLessThan(300);
    expect(fake.calls.length).toBe(callsBefore);
    expect((await allRequests(t)).length).toBe(requestsBefore);
  });

  it("names the right spelling of a misspelled action", async () => {
    const res = await ask({
      action: "s3:getobject",
      resource: "arn:aws:s3:::lab/x",
      context: { lab: true },
    });
    const error = await expectError(res, 422, "unknown_aws_action");
    expect(error.details).toEqual({ did_you_mean: "s3:GetObject" });
  });

  it("still records a request the policy denies, whatever its action", async () => {
    const res = await ask({ action: "s3:GetObjects", resource: "arn:aws:s3:::elsewhere/x" });
    await expectError(res, 403, "policy_denied");
  });
});

describe("STS failures", () => {
  const secrets = [TEST_SECRET_ACCESS_KEY, TEST_ACCESS_KEY_ID, "writ-broker", "not authorized"];

  async function collectFailing(failure: Parameters<FakeAws["failNext"]>[1], times: number) {
    const request = await expectJson<{ id: string }>(
      await ask({ action: "s3:GetObject", resource: "arn:aws:s3:::reports/failing.csv" }),
      201,
    );
    const before = fake.calls.filter((c) => c.action === "AssumeRole").length;
    fake.failNext("AssumeRole", failure, times);
    const res = await t.call("POST", `/v1/requests/${request.id}/credential`, { key: agentKey() });
    const attempts = fake.calls.filter((c) => c.action === "AssumeRole").length - before;
    return { id: request.id, res, attempts };
  }

  it.each([
    ["AccessDenied", 1, 502, "aws_access_denied", 1],
    ["Throttling", 2, 503, "aws_throttled", 2],
    ["PackedPolicyTooLarge", 1, 422, "session_policy_too_large", 1],
    ["ServiceUnavailable", 2, 503, "aws_unavailable", 2],
  ] as const)(
    "%s answers a clear code, leaks nothing, and leaves the request collectable",
    async (failure, times, status, code, attempts) => {
      const linesBefore = logLines.length;
      const { id, res, attempts: made } = await collectFailing(failure, times);
      const text = await res.clone().text();
      await expectError(res, status, code);
      // Refusals are final; only throttling and server errors are retried.
      expect(made).toBe(attempts);
      const events = JSON.stringify(await allEvents(t, { request_id: id }));
      const logs = JSON.stringify(logLines.slice(linesBefore));
      for (const secret of secrets) {
        expect(text).not.toContain(secret);
        expect(events).not.toContain(secret);
        expect(logs).not.toContain(secret);
      }
      expect(logs).toMatch(new RegExp(`"aws_error":"${failure}(Exception)?"`));
      const retried = await t.call("POST", `/v1/requests/${id}/credential`, { key: agentKey() });
      const body = await expectJson<AwsCredentialBody>(retried, 200);
      expect(body.credential.access_key_id).toMatch(/^ASIA/);
    },
  );

  it("retries a single transient failure and succeeds", async () => {
    const { res, attempts } = await collectFailing("ServiceUnavailable", 1);
    expect(res.status).toBe(200);
    expect(attempts).toBe(2);
  });

  it("answers aws_unavailable when the endpoint is down, and aws_access_denied for a bad signature", async () => {
    const down = await startTestWrit(
      { aws: AWS_CONFIG, policies: { dir: policiesDir, watch: false } },
      { awsClients: { sts: stsClientTo(await closedUrl()), iam: fake.clients().iam } },
    );
    const wrongKey = await startTestWrit(
      { aws: AWS_CONFIG, policies: { dir: policiesDir, watch: false } },
      {
        awsClients: {
          sts: stsClientTo(fake.url, "wrong-secret-0000000000000000000000000000"),
          iam: fake.clients().iam,
        },
      },
    );
    try {
      for (const [writ, status, code] of [
        [down, 503, "aws_unavailable"],
        [wrongKey, 502, "aws_access_denied"],
      ] as const) {
        const key = keyOf(writ, "report-agent");
        const request = await expectJson<{ id: string }>(
          await writ.call("POST", "/v1/requests", {
            key,
            body: {
              credential: "aws",
              action: "s3:GetObject",
              resource: "arn:aws:s3:::reports/q3.csv",
            },
          }),
          201,
        );
        const res = await writ.call("POST", `/v1/requests/${request.id}/credential`, { key });
        await expectError(res, status, code);
      }
      expect(fake.signatureFailures).toContain("SignatureDoesNotMatch");
    } finally {
      await down.close();
      await wrongKey.close();
    }
  });
});

describe("ending a session early", () => {
  const REVOCATIONS = "writ-revocations";

  it("complete denies the grant through the role's inline policy", async () => {
    const { request, credential } = await askAndCollect({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/done.csv",
    });
    const grant = sessionOf(credential.access_key_id).tags["writ-grant"] ?? "";
    const done = await t.call("POST", `/v1/requests/${request.id}/complete`, { key: agentKey() });
    expect((await expectJson<{ status: string }>(done, 200)).status).toBe("completed");
    const policy = policyDocumentOf(fake.rolePolicy("writ-reports", REVOCATIONS));
    expect(policy.Statement).toContainEqual({
      Sid: "WritEndedGrants",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: {
        StringEquals: { "aws:PrincipalTag/writ-grant": expect.arrayContaining([grant]) },
      },
    });
    const put = fake.calls.filter((c) => c.action === "PutRolePolicy").at(-1);
    expect(put?.params).toMatchObject({ RoleName: "writ-reports", PolicyName: REVOCATIONS });
    // The state change and the end at the source, recorded in one commit.
    const events = await allEvents(t, { request_id: request.id });
    expect(events.map((e) => e.type).slice(-2)).toEqual([
      "credential.completed",
      "credential.revoked",
    ]);
    const revoked = events.at(-1);
    expect(revoked?.time).toBe(events.at(-2)?.time);
    expect(revoked).toMatchObject({
      actor: { kind: "agent", id: "report-agent" },
      data: {
        reason: "completed",
        cause: "completed",
        at_source: "aws-iam",
        credential_type: "aws",
        credential_id: credential.access_key_id,
        role_arn: role("writ-reports"),
        policy_name: REVOCATIONS,
        grant_id: grant,
        session_name: `writ-${request.id.slice(4)}`,
        deny: "grant",
      },
    });
    expectNoSecrets(JSON.stringify(events) + JSON.stringify(logLines), credential);
  });

  it("a reviewer's or auditor's revoke denies the grant too", async () => {
    const { request, credential } = await askAndCollect({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/leaked.csv",
    });
    const grant = sessionOf(credential.access_key_id).tags["writ-grant"] ?? "-";
    const revoked = await t.call("POST", `/v1/requests/${request.id}/revoke`, {
      key: keyOf(t, "dana"),
      body: { reason: "key pasted in a ticket" },
    });
    expect((await expectJson<{ status: string }>(revoked, 200)).status).toBe("revoked");
    expect(fake.rolePolicy("writ-reports", REVOCATIONS)).toContain(grant);
    // One event: the reviewer's revoke, carrying the end at the source.
    const events = await allEvents(t, { request_id: request.id });
    const revocations = events.filter((e) => e.type === "credential.revoked");
    expect(revocations).toHaveLength(1);
    expect(revocations[0]).toMatchObject({
      actor: { kind: "auditor", id: "dana" },
      data: {
        reason: "key pasted in a ticket",
        cause: "revoked",
        at_source: "aws-iam",
        credential_id: credential.access_key_id,
        grant_id: grant,
        deny: "grant",
      },
    });
    expectNoSecrets(JSON.stringify(events), credential);
  });

  it("a failing IAM write leaves the credential issued and answers 503", async () => {
    const { request } = await askAndCollect({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/retry.csv",
    });
    fake.failNext("PutRolePolicy", "ServiceUnavailable", 2);
    const failed = await t.call("POST", `/v1/requests/${request.id}/complete`, { key: agentKey() });
    await expectError(failed, 503, "revocation_unavailable");
    const status = await t.call("GET", `/v1/requests/${request.id}`, { key: agentKey() });
    expect((await expectJson<{ status: string }>(status, 200)).status).toBe("issued");
    const typesOf = async () => (await allEvents(t, { request_id: request.id })).map((e) => e.type);
    expect(await typesOf()).not.toContain("credential.revoked");
    const again = await t.call("POST", `/v1/requests/${request.id}/complete`, { key: agentKey() });
    expect((await expectJson<{ status: string }>(again, 200)).status).toBe("completed");
    expect((await typesOf()).filter((type) => type === "credential.revoked")).toHaveLength(1);
  });

  it("expiry denies a grant whose STS session outlives the approved TTL", async () => {
    const { request, credential } = await askAndCollect({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/expiring.csv",
    });
    const session = sessionOf(credential.access_key_id);
    const grant = session.tags["writ-grant"] ?? "";
    expect(session.expiration - clock.now()).toBe(900_000);
    const from = fake.calls.length;
    clock.advance(301);
    await t.writ.broker.expireDue();
    await fake.waitForCall(
      (c) => c.action === "PutRolePolicy" && (c.params.PolicyDocument ?? "").includes(grant),
      { from },
    );
    const policy = fake.rolePolicy("writ-reports", REVOCATIONS) ?? "";
    expect(policy).toContain(grant);
    // Recorded once IAM took the deny, after the expiry itself.
    const revoked = await nextEvent(request.id, "credential.revoked");
    expect(revoked).toMatchObject({
      actor: { kind: "system", id: "writ" },
      data: {
        reason: "expired",
        cause: "expired",
        at_source: "aws-iam",
        credential_id: credential.access_key_id,
        grant_id: grant,
      },
    });
    const events = await allEvents(t, { request_id: request.id });
    expect(events.map((e) => e.type).slice(-2)).toEqual([
      "credential.expired",
      "credential.revoked",
    ]);
    expectNoSecrets(JSON.stringify(events) + JSON.stringify(logLines), credential);
  });
});
