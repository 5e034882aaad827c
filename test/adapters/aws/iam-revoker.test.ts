import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIamRevoker, type IamRevoker } from "../../../src/adapters/aws/iam-revoker.js";
import { grantId, parseRevocationPolicy } from "../../../src/adapters/aws/revocation-policy.js";
import type { AccessRequest } from "../../../src/domain/request.js";
import { silentLogger } from "../../../src/ports/logger.js";
import { policyDocumentOf } from "../../support/aws-policy.js";
import { issuedAwsRequest } from "../../support/aws-requests.js";
import { type FakeAws, IAM_ROLE_POLICY_CAP, startFakeAws } from "../../support/fake-aws.js";
import { ManualClock } from "../../support/harness.js";

const POLICY = "writ-revocations";
const clock = new ManualClock();
let fake: FakeAws;
let revoker: IamRevoker;

/** An issued request whose session of `sessionSeconds` runs on role `roleName` (under a path). */
function issued(roleName: string, sessionSeconds = 900) {
  return issuedAwsRequest({
    now: clock.now(),
    roleArn: `arn:aws:iam::111122223333:role/team/${roleName}`,
    sessionSeconds,
  });
}

/** A revocation policy as writ writes it: `others` first, then the deny of `grants`. */
function endedGrantsPolicy(grants: string[], others: object[] = []): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      ...others,
      {
        Sid: "WritEndedGrants",
        Effect: "Deny",
        Action: "*",
        Resource: "*",
        Condition: { StringEquals: { "aws:PrincipalTag/writ-grant": grants } },
      },
    ],
  });
}

function stored(roleName: string) {
  return parseRevocationPolicy(fake.rolePolicy(roleName, POLICY));
}

function writesTo(roleName: string) {
  return fake.calls.filter((c) => c.action === "PutRolePolicy" && c.params.RoleName === roleName)
    .length;
}

beforeAll(async () => {
  fake = await startFakeAws({ now: () => clock.now() });
  revoker = createIamRevoker({
    ...fake.clients({ maxAttempts: 1 }),
    policyName: POLICY,
    clock,
    logger: silentLogger,
  });
});

afterAll(async () => {
  revoker?.close();
  await fake?.close();
});

describe("the IAM revoker", () => {
  it("adds the grant to a deny matched on the session tag, by role name without path", async () => {
    const { request, grant } = issued("first");
    // What it did, for writ to record in `credential.revoked`: public facts only.
    expect(await revoker.revoke(request, "completed")).toEqual({
      source: "aws-iam",
      details: {
        role_arn: "arn:aws:iam::111122223333:role/team/first",
        policy_name: POLICY,
        grant_id: grant,
        session_name: "writ-x",
        deny: "grant",
      },
    });
    const policy = policyDocumentOf(fake.rolePolicy("first", POLICY));
    expect(policy.Statement).toEqual([
      {
        Sid: "WritEndedGrants",
        Effect: "Deny",
        Action: "*",
        Resource: "*",
        Condition: { StringEquals: { "aws:PrincipalTag/writ-grant": [grant] } },
      },
    ]);
    // Idempotent: a second call finds the grant denied and writes nothing.
    const writes = writesTo("first");
    expect(await revoker.revoke(request, "completed")).toMatchObject({ source: "aws-iam" });
    expect(writesTo("first")).toBe(writes);
  });

  it("prunes entries whose sessions have ended and keeps statements it did not write", async () => {
    const manual = { Sid: "Manual", Effect: "Deny", Action: "s3:DeleteObject", Resource: "*" };
    const old = Array.from({ length: 40 }, () => grantId(clock.now() - 3_600_000, randomBytes(16)));
    const live = grantId(clock.now() + 600_000, randomBytes(16));
    fake.setRolePolicy("pruned", POLICY, endedGrantsPolicy([...old, live], [manual]));
    const { request, grant } = issued("pruned");
    await revoker.revoke(request, "expired");
    const doc = stored("pruned");
    expect(doc.grants).toEqual([live, grant]);
    expect(doc.foreign).toEqual([manual]);
  });

  it("holds IAM's size cap: a list that no longer fits becomes one time-based deny", async () => {
    // Another inline policy takes most of the role's 10,240 characters.
    const filler = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${"x".repeat(9000)}` },
      ],
    });
    fake.setRolePolicy("crowded", "app", filler);
    const live = Array.from({ length: 30 }, () => grantId(clock.now() + 600_000, randomBytes(16)));
    fake.setRolePolicy("crowded", POLICY, endedGrantsPolicy(live));
    const { request } = issued("crowded");
    const revoked = await revoker.revoke(request, "completed");
    expect(revoked?.details?.deny).toBe("all_earlier_sessions");
    const text = fake.rolePolicy("crowded", POLICY) ?? "";
    expect(text.length + filler.length).toBeLessThanOrEqual(IAM_ROLE_POLICY_CAP);
    const doc = parseRevocationPolicy(text);
    expect(doc.grants).toEqual([]);
    // Every writ session issued so far on this role is denied, this one included.
    expect(doc.endedBefore).toBeGreaterThan(request.credential?.issuedAt ?? Infinity);
    expect(policyDocumentOf(text).Statement[0]).toMatchObject({
      Sid: "WritEndedBefore",
      Effect: "Deny",
      Condition: { Null: { "aws:PrincipalTag/writ-grant": "false" } },
    });
  });

  it("never writes its own list past the cap, even with no other policies", async () => {
    const live = Array.from({ length: 272 }, () => grantId(clock.now() + 600_000, randomBytes(16)));
    const full = endedGrantsPolicy(live);
    expect(full.length).toBeLessThanOrEqual(IAM_ROLE_POLICY_CAP);
    fake.setRolePolicy("long-list", POLICY, full);
    const { request } = issued("long-list");
    const failedWrites = fake.calls.length;
    await revoker.revoke(request, "completed");
    const text = fake.rolePolicy("long-list", POLICY) ?? "";
    expect(text.length).toBeLessThanOrEqual(IAM_ROLE_POLICY_CAP);
    expect(stored("long-list").endedBefore).toBeGreaterThan(
      request.credential?.issuedAt ?? Infinity,
    );
    // The over-long list was never sent: one write, of the compact form.
    expect(fake.calls.slice(failedWrites).filter((c) => c.action === "PutRolePolicy")).toHaveLength(
      1,
    );
  });

  it("serializes concurrent revocations on one role: none is lost", async () => {
    const sessions = Array.from({ length: 8 }, () => issued("busy"));
    await Promise.all(sessions.map(({ request }) => revoker.revoke(request, "completed")));
    expect(new Set(stored("busy").grants)).toEqual(new Set(sessions.map((s) => s.grant)));
  });

  it("denies a session writ's clock says just ended: AWS's clock may run behind", async () => {
    const { request, grant } = issued("just-ended", 900);
    // Half a minute past the end STS named: by a clock at AWS that runs behind
    // writ's (by less than the minute allowed for), the session still works.
    clock.advance(930);
    expect(await revoker.revoke(request, "expired")).toMatchObject({
      source: "aws-iam",
      details: { grant_id: grant, deny: "grant" },
    });
    expect(stored("just-ended").grants).toEqual([grant]);
    // Another write of the role within the allowance keeps the deny.
    const other = issued("just-ended");
    await revoker.revoke(other.request, "completed");
    expect(new Set(stored("just-ended").grants)).toEqual(new Set([grant, other.grant]));
  });

  it("does nothing for a session that has ended at STS, even allowing for clock skew", async () => {
    const { request } = issued("ended", 900);
    clock.advance(961);
    const before = fake.calls.length;
    expect(await revoker.revoke(request, "expired")).toBeUndefined();
    expect(fake.calls.length).toBe(before);
  });

  it("refuses, without writing anything, a role in another account than its own", async () => {
    // IAM names a role by its name alone, in the caller's own account: a deny
    // for a role elsewhere would land on a role of the same name in writ's
    // account and leave the session it was meant for untouched.
    const { request } = issuedAwsRequest({
      now: clock.now(),
      roleArn: "arn:aws:iam::444455556666:role/team/elsewhere",
      sessionSeconds: 900,
    });
    await expect(revoker.revoke(request, "completed")).rejects.toMatchObject({
      code: "aws_role_not_configured",
    });
    expect(writesTo("elsewhere")).toBe(0);
    expect(fake.rolePolicy("elsewhere", POLICY)).toBeUndefined();
  });

  it("fails closed for a credential without its session on record", async () => {
    const { request } = issued("unknown");
    const { credential } = request;
    if (credential === undefined) throw new Error("no credential");
    const bare: AccessRequest = {
      ...request,
      credential: {
        type: credential.type,
        id: credential.id,
        issuedAt: credential.issuedAt,
        expiresAt: credential.expiresAt,
      },
    };
    await expect(revoker.revoke(bare, "completed")).rejects.toMatchObject({
      code: "internal_error",
    });
  });

  it("maps IAM failures to coded errors", async () => {
    const { request } = issued("failing");
    fake.failNext("GetRolePolicy", "AccessDenied");
    await expect(revoker.revoke(request, "completed")).rejects.toMatchObject({
      code: "aws_access_denied",
    });
    fake.failNext("PutRolePolicy", "Throttling");
    await expect(revoker.revoke(request, "completed")).rejects.toMatchObject({
      code: "aws_throttled",
    });
    await revoker.revoke(request, "completed");
    expect(stored("failing").grants).toHaveLength(1);
  });

  it("leaves a session it failed to deny to the caller's retry, not to a later write", async () => {
    const refused = issued("refused");
    fake.failNext("PutRolePolicy", "Throttling");
    await expect(revoker.revoke(refused.request, "revoked")).rejects.toMatchObject({
      code: "aws_throttled",
    });
    // writ answered "still issued" and recorded no end: the next write of the
    // role, for another session, must not end this one without a record.
    const other = issued("refused");
    await revoker.revoke(other.request, "completed");
    expect(stored("refused").grants).toEqual([other.grant]);
    // The caller's retry ends it, and that is what writ records.
    await revoker.revoke(refused.request, "revoked");
    expect(new Set(stored("refused").grants)).toEqual(new Set([other.grant, refused.grant]));
  });

  it("keeps a deny another end of the same session recorded when its own write fails", async () => {
    const ended = issued("twice");
    // The expiry ends the session: its deny is written and on record.
    await revoker.revoke(ended.request, "expired");
    expect(stored("twice").grants).toEqual([ended.grant]);
    // A reviewer's revoke of the same session fails at IAM.
    fake.failNext("PutRolePolicy", "Throttling");
    fake.setRolePolicy("twice", POLICY, JSON.stringify({ Version: "2012-10-17", Statement: [] }));
    await expect(revoker.revoke(ended.request, "revoked")).rejects.toMatchObject({
      code: "aws_throttled",
    });
    // The expiry's deny stays on record: the next write of the role restores it.
    const other = issued("twice");
    await revoker.revoke(other.request, "completed");
    expect(new Set(stored("twice").grants)).toEqual(new Set([ended.grant, other.grant]));
  });
});
