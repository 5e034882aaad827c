import { describe, expect, it } from "vitest";
import { completeRequest, issueCredential, revokeCredential } from "../../src/domain/credential.js";
import type { Agent, Auditor } from "../../src/domain/principal.js";
import { type AccessRequest, openRequest } from "../../src/domain/request.js";
import {
  type RevokedAtSource,
  sourceRevocationFailedEvent,
  sourceRevokedEvent,
} from "../../src/domain/revocation.js";
import { reportsReadDecision } from "../support/aws-requests.js";

const T0 = Date.parse("2026-01-15T09:00:00.000Z");
const agent: Agent = { kind: "agent", id: "report-agent", owner: "alice", attributes: {} };
const dana: Auditor = { kind: "auditor", id: "dana" };
const AT_SOURCE: RevokedAtSource = {
  source: "aws-iam",
  details: { role_arn: "arn:aws:iam::111122223333:role/r", grant_id: "g1_x", deny: "grant" },
};

function issuedAws(): AccessRequest {
  const { request } = openRequest({
    id: "req_aws",
    agent,
    input: {
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/q3.csv",
      credentialType: "aws",
      context: {},
    },
    decision: reportsReadDecision(),
    now: T0,
    timing: { collectWindowSeconds: 300 },
  });
  return issueCredential({
    request,
    agent,
    credential: { type: "aws", id: "ASIAEXAMPLE", issuedAt: T0 + 1000, expiresAt: T0 + 301_000 },
    now: T0 + 1000,
  }).request;
}

describe("recording an end at the source", () => {
  it("completion records the state change and the source's end in one transition", () => {
    const request = issuedAws();
    const { request: done, events } = completeRequest({
      request,
      agent,
      now: T0 + 5000,
      revokedAtSource: AT_SOURCE,
    });
    expect(done.status).toBe("completed");
    expect(done.version).toBe(request.version + 1);
    expect(events.map((e) => e.type)).toEqual(["credential.completed", "credential.revoked"]);
    expect(events[1]).toEqual({
      type: "credential.revoked",
      requestId: "req_aws",
      actor: { kind: "agent", id: "report-agent" },
      time: T0 + 5000,
      data: {
        role_arn: "arn:aws:iam::111122223333:role/r",
        grant_id: "g1_x",
        deny: "grant",
        at_source: "aws-iam",
        cause: "completed",
        reason: "completed",
        credential_type: "aws",
        credential_id: "ASIAEXAMPLE",
      },
    });
  });

  it("completion without a source revoker records only the completion", () => {
    const { events } = completeRequest({ request: issuedAws(), agent, now: T0 + 5000 });
    expect(events.map((e) => e.type)).toEqual(["credential.completed"]);
  });

  it("a reviewer's revoke stays one event, with the reviewer's reason and the source's end", () => {
    const { request, events } = revokeCredential({
      request: issuedAws(),
      by: dana,
      reason: "leaked",
      now: T0 + 5000,
      revokedAtSource: AT_SOURCE,
    });
    expect(request.status).toBe("revoked");
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toEqual({
      role_arn: "arn:aws:iam::111122223333:role/r",
      grant_id: "g1_x",
      deny: "grant",
      at_source: "aws-iam",
      cause: "revoked",
      credential_id: "ASIAEXAMPLE",
      previous_status: "issued",
      reason: "leaked",
    });
  });

  it("a revoker's details never override the recorded facts", () => {
    const event = sourceRevokedEvent({
      request: issuedAws(),
      cause: "expired",
      revoked: { source: "aws-iam", details: { reason: "x", credential_id: "y", at_source: "z" } },
      actor: { kind: "system", id: "writ" },
      now: T0,
    });
    expect(event.data).toMatchObject({
      reason: "expired",
      credential_id: "ASIAEXAMPLE",
      at_source: "aws-iam",
    });
  });

  it("a source revocation that failed is recorded with the attempts and the error code", () => {
    const event = sourceRevocationFailedEvent({
      request: issuedAws(),
      cause: "expired",
      failure: {
        source: "aws-iam",
        attempts: 3,
        error: "aws_unavailable",
        gaveUp: "attempts_exhausted",
      },
      now: T0,
    });
    expect(event).toEqual({
      type: "credential.revocation_failed",
      requestId: "req_aws",
      actor: { kind: "system", id: "writ" },
      time: T0,
      data: {
        cause: "expired",
        reason: "expired",
        credential_type: "aws",
        credential_id: "ASIAEXAMPLE",
        at_source: "aws-iam",
        attempts: 3,
        error: "aws_unavailable",
        gave_up: "attempts_exhausted",
      },
    });
  });
});
