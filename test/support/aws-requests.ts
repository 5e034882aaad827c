import { randomBytes } from "node:crypto";
import { grantId } from "../../src/adapters/aws/revocation-policy.js";
import type { Decision } from "../../src/domain/decision.js";
import type { AccessRequest } from "../../src/domain/request.js";

/** The policy's answer to the sample report read: allowed outright, for five minutes. */
export function reportsReadDecision(): Decision {
  return {
    effect: "allow",
    policies: ["reports-read"],
    requirements: [],
    ttlSeconds: 300,
    approvalTimeoutSeconds: 900,
    reasonRequired: false,
    sensitiveFields: [],
  };
}

/**
 * The sample report read as writ holds it once issued at `now`: a five-minute
 * credential from an STS session of `sessionSeconds` on `roleArn`, tagged with
 * `grant`, the id a revoker denies.
 */
export function issuedAwsRequest(options: {
  now: number;
  roleArn: string;
  sessionSeconds: number;
}): { request: AccessRequest; grant: string } {
  const { now, roleArn, sessionSeconds } = options;
  const grant = grantId(now + sessionSeconds * 1000, randomBytes(16));
  const request: AccessRequest = {
    id: `req_${randomBytes(16).toString("base64url")}`,
    version: 3,
    agentId: "report-agent",
    owner: "alice",
    status: "issued",
    action: "s3:GetObject",
    resource: "arn:aws:s3:::reports/q3.csv",
    credentialType: "aws",
    context: {},
    decision: reportsReadDecision(),
    grantedTtlSeconds: 300,
    createdAt: now,
    updatedAt: now,
    expiresAt: now + 300_000,
    reviews: [],
    credential: {
      type: "aws",
      id: "ASIAEXAMPLE",
      issuedAt: now,
      expiresAt: now + 300_000,
      attributes: {
        role_arn: roleArn,
        session_name: "writ-x",
        grant_id: grant,
        session_expires_at: new Date(now + sessionSeconds * 1000).toISOString(),
      },
    },
  };
  return { request, grant };
}
