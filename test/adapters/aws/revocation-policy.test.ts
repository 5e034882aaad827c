import { describe, expect, it } from "vitest";
import {
  CLOCK_SKEW_MS,
  collapseRevocations,
  deniesGrant,
  EMPTY_REVOCATIONS,
  grantId,
  grantSessionEnd,
  MAX_STS_SESSION_MS,
  parseRevocationPolicy,
  pruneRevocations,
  renderRevocationPolicy,
  withGrant,
} from "../../../src/adapters/aws/revocation-policy.js";
import {
  isoSeconds,
  roleSessionName,
  sessionPolicy,
  sourceIdentity,
} from "../../../src/adapters/aws/session-policy.js";

const NOW = Date.parse("2026-01-15T09:00:00Z");
const random = (byte: number) => new Uint8Array(16).fill(byte);

describe("grant ids", () => {
  it("carry when their session ends, to the second, and 128 random bits", () => {
    const id = grantId(NOW + 900_500, random(7));
    expect(id).toMatch(/^g\d{10}_[A-Za-z0-9_-]{22}$/);
    expect(grantSessionEnd(id)).toBe(NOW + 901_000);
    expect(grantSessionEnd("someone-else")).toBeUndefined();
  });
});

describe("the revocation policy document", () => {
  it("round-trips grants and the time-based deny, keeping statements writ did not write", () => {
    const foreign = { Sid: "Manual", Effect: "Deny", Action: "s3:*", Resource: "*" };
    const text = renderRevocationPolicy({
      grants: ["g1768468800_AAAAAAAAAAAAAAAAAAAAAA"],
      endedBefore: NOW,
      foreign: [foreign],
    });
    const doc = JSON.parse(text) as { Statement: Record<string, unknown>[] };
    expect(doc.Statement).toContainEqual(foreign);
    expect(doc.Statement).toContainEqual({
      Sid: "WritEndedGrants",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: {
        StringEquals: { "aws:PrincipalTag/writ-grant": ["g1768468800_AAAAAAAAAAAAAAAAAAAAAA"] },
      },
    });
    expect(doc.Statement).toContainEqual({
      Sid: "WritEndedBefore",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: {
        DateLessThan: { "aws:TokenIssueTime": "2026-01-15T09:00:00Z" },
        Null: { "aws:PrincipalTag/writ-grant": "false" },
      },
    });
    expect(parseRevocationPolicy(text)).toEqual({
      grants: ["g1768468800_AAAAAAAAAAAAAAAAAAAAAA"],
      endedBefore: NOW,
      foreign: [foreign],
    });
  });

  it("keeps a statement that only looks like writ's as foreign, never loses it", () => {
    const lookalike = {
      Sid: "WritEndedGrants",
      Effect: "Deny",
      Action: "s3:GetObject",
      Resource: "*",
      Condition: { StringEquals: { "aws:PrincipalTag/writ-grant": ["x"] } },
    };
    const doc = parseRevocationPolicy(
      JSON.stringify({ Version: "2012-10-17", Statement: [lookalike] }),
    );
    expect(doc).toEqual({ grants: [], foreign: [lookalike] });
    expect(parseRevocationPolicy(undefined)).toEqual(EMPTY_REVOCATIONS);
  });

  it("prunes grants whose sessions have ended, allowing for clock skew", () => {
    const ended = grantId(NOW - CLOCK_SKEW_MS - 2000, random(1));
    const justEnded = grantId(NOW - 1000, random(2));
    const live = grantId(NOW + 600_000, random(3));
    const doc = pruneRevocations(
      { grants: [ended, justEnded, live, "manual-entry"], foreign: [] },
      NOW,
    );
    expect(doc.grants).toEqual([justEnded, live, "manual-entry"]);
    // A grant writ still holds live, by STS's later end, stays past its own.
    const kept = pruneRevocations({ grants: [ended, live], foreign: [] }, NOW, new Set([ended]));
    expect(kept.grants).toEqual([ended, live]);
  });

  it("drops the time-based deny once every session it covers has ended", () => {
    const before = NOW - MAX_STS_SESSION_MS - CLOCK_SKEW_MS;
    expect(
      pruneRevocations({ grants: [], endedBefore: before, foreign: [] }, NOW).endedBefore,
    ).toBe(before);
    expect(
      pruneRevocations({ grants: [], endedBefore: before - 1000, foreign: [] }, NOW).endedBefore,
    ).toBeUndefined();
  });

  it("denies a grant listed, or issued before the time-based deny", () => {
    const grant = grantId(NOW + 900_000, random(4));
    expect(deniesGrant(withGrant(EMPTY_REVOCATIONS, grant), grant, NOW)).toBe(true);
    expect(deniesGrant(EMPTY_REVOCATIONS, grant, NOW)).toBe(false);
    const collapsed = collapseRevocations(
      withGrant(EMPTY_REVOCATIONS, grant),
      NOW + 2 * CLOCK_SKEW_MS,
    );
    expect(collapsed.grants).toEqual([]);
    expect(deniesGrant(collapsed, grant, NOW)).toBe(true);
    expect(deniesGrant(collapsed, grant, NOW + 10 * CLOCK_SKEW_MS)).toBe(false);
  });
});

describe("the session policy and STS names", () => {
  it("allows exactly one action on one resource until the approved expiry", () => {
    const policy = JSON.parse(
      sessionPolicy({
        action: "s3:GetObject",
        resource: "arn:aws:s3:::reports/q3.csv",
        notAfter: NOW + 300_999,
        sourceIps: [["203.0.113.0/24"], ["198.51.100.7", "2001:db8::/32"]],
      }),
    );
    expect(policy).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "WritGrant",
          Effect: "Allow",
          Action: "s3:GetObject",
          Resource: "arn:aws:s3:::reports/q3.csv",
          Condition: {
            DateLessThan: { "aws:CurrentTime": "2026-01-15T09:05:00Z" },
            IpAddress: { "aws:SourceIp": ["203.0.113.0/24"] },
          },
        },
        {
          Sid: "WritSourceIp2",
          Effect: "Deny",
          Action: "*",
          Resource: "*",
          Condition: { NotIpAddress: { "aws:SourceIp": ["198.51.100.7", "2001:db8::/32"] } },
        },
      ],
    });
    expect(isoSeconds(NOW + 999)).toBe("2026-01-15T09:00:00Z");
  });

  it("turns agent ids into SourceIdentity values STS accepts, distinct per agent", () => {
    const sts = /^[\w+=,.@-]{2,64}$/;
    expect(sourceIdentity("report-agent")).toBe("report-agent");
    const cases = ["a", "agent with spaces", "agent/with/slashes", "x".repeat(128), "ünïcode"];
    const results = cases.map(sourceIdentity);
    for (const result of results) expect(result).toMatch(sts);
    expect(new Set(results).size).toBe(cases.length);
    expect(sourceIdentity("agent:a")).not.toBe(sourceIdentity("agent/a"));
  });

  it("keeps apart long agent ids that differ only past the kept prefix, even when chosen to collide", () => {
    // Two workload ids (say, one claim an attacker picks) that share the part
    // of the id a SourceIdentity keeps, and whose SHA-256 digests begin with
    // the same 48 bits: a pair like this takes seconds to find, so a short
    // hash would give both agents one identity in CloudTrail and in any
    // `sts:SourceIdentity` condition.
    const first = "oidc:acme/release-pipeline-for-the-payments-service/91347931f5d2";
    const second = "oidc:acme/release-pipeline-for-the-payments-service/b2189ca7ec90";
    expect(sourceIdentity(first)).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(sourceIdentity(first)).not.toBe(sourceIdentity(second));
  });

  it("names the session after the request", () => {
    expect(roleSessionName("req_3q2-7wEvXv9bE1c8S3iRzA")).toBe("writ-3q2-7wEvXv9bE1c8S3iRzA");
  });
});
