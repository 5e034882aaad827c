import { randomBytes } from "node:crypto";
import {
  AssumeRoleCommand,
  type AssumeRoleCommandOutput,
  type STSClient,
} from "@aws-sdk/client-sts";
import { WritError } from "../../domain/errors.js";
import type { AccessRequest } from "../../domain/request.js";
import type { Logger } from "../../ports/logger.js";
import type { Minted, Minter } from "../../ports/minter.js";
import type { AwsCatalogue } from "./catalogue.js";
import { grantId } from "./revocation-policy.js";
import { type AwsRoleMapping, type AwsRoleRoute, compileRoutes, routeFor } from "./roles.js";
import { awsFailure } from "./sdk-errors.js";
import {
  GRANT_TAG,
  MAX_SESSION_POLICY_CHARS,
  REQUEST_TAG,
  roleSessionName,
  sessionPolicy,
  sourceIdentity,
} from "./session-policy.js";

/** The shortest session STS issues. */
export const MIN_SESSION_SECONDS = 900;

export interface AwsMinterOptions {
  /** An STS client; its region, endpoint and credentials follow the SDK's conventions. */
  readonly sts: STSClient;
  readonly catalogue: AwsCatalogue;
  readonly roles: readonly AwsRoleMapping[];
  /** The longest session to ask for (900-43200); never more than the grant needs beyond 900. */
  readonly maxSessionSeconds: number;
  readonly logger: Logger;
}

/** What will be asked of STS for a request: checked at request time, used again at mint. */
interface MintPlan {
  readonly route: AwsRoleRoute;
  readonly policy: string;
  readonly durationSeconds: number;
  readonly notAfter: number;
}

/**
 * Mints AWS credentials with STS `AssumeRole`: a session of the configured role,
 * narrowed by an inline session policy to the request's one action on its one
 * resource until the approved expiry, tagged with the request and a fresh grant
 * id (which the revoker denies when the agent completes), with the agent as
 * `SourceIdentity`.
 */
export function createAwsMinter(options: AwsMinterOptions): Minter {
  const { sts, catalogue, logger } = options;
  const routes = compileRoutes(options.roles);

  async function plan(request: AccessRequest, now: number): Promise<MintPlan> {
    const action = await catalogue.action(request.action);
    catalogue.assertResource(action, request.resource);
    const route = routeFor(routes, request.resource);
    const notAfter = now + request.grantedTtlSeconds * 1000;
    const policy = sessionPolicy({
      action: action.name,
      resource: request.resource,
      notAfter,
      sourceIps: request.decision.awsSourceIps ?? [],
    });
    if (policy.length > MAX_SESSION_POLICY_CHARS) {
      throw new WritError(
        "session_policy_too_large",
        `The session policy would be ${policy.length} characters; STS takes at most ${MAX_SESSION_POLICY_CHARS}.`,
        { chars: policy.length, limit: MAX_SESSION_POLICY_CHARS },
      );
    }
    const durationSeconds = Math.min(
      Math.max(MIN_SESSION_SECONDS, request.grantedTtlSeconds),
      options.maxSessionSeconds,
    );
    return { route, policy, durationSeconds, notAfter };
  }

  return {
    type: "aws",

    async validate(request) {
      // The expiry's text has the same length whatever the time, so the size
      // checked now is the size minted later.
      await plan(request, request.createdAt);
    },

    async mint(request, now): Promise<Minted> {
      // Checked again: the configuration may have changed since the request.
      const { route, policy, durationSeconds, notAfter } = await plan(request, now);
      const sessionName = roleSessionName(request.id);
      const identity = sourceIdentity(request.agentId);
      const grant = grantId(now + durationSeconds * 1000, randomBytes(16));
      let output: AssumeRoleCommandOutput;
      try {
        output = await sts.send(
          new AssumeRoleCommand({
            RoleArn: route.roleArn,
            RoleSessionName: sessionName,
            Policy: policy,
            DurationSeconds: durationSeconds,
            SourceIdentity: identity,
            Tags: [
              { Key: REQUEST_TAG, Value: request.id },
              { Key: GRANT_TAG, Value: grant },
            ],
            ...(route.externalId !== undefined ? { ExternalId: route.externalId } : {}),
          }),
        );
      } catch (error) {
        throw awsFailure(error, "sts:AssumeRole", logger, {
          request_id: request.id,
          role_arn: route.roleArn,
        });
      }
      const credentials = output.Credentials;
      const expiration = credentials?.Expiration?.getTime();
      if (
        credentials?.AccessKeyId === undefined ||
        credentials.SecretAccessKey === undefined ||
        credentials.SessionToken === undefined ||
        expiration === undefined ||
        Number.isNaN(expiration)
      ) {
        logger.error("STS AssumeRole answered without complete credentials", {
          request_id: request.id,
        });
        throw new WritError("aws_error", "AWS answered sts:AssumeRole without credentials.");
      }
      if (output.PackedPolicySize !== undefined && output.PackedPolicySize >= 90) {
        logger.warn("session policy and tags are close to STS's packed size limit", {
          request_id: request.id,
          packed_policy_percent: output.PackedPolicySize,
        });
      }
      const expiresAt = Math.min(notAfter, expiration);
      return {
        credential: {
          type: "aws",
          accessKeyId: credentials.AccessKeyId,
          secretAccessKey: credentials.SecretAccessKey,
          sessionToken: credentials.SessionToken,
          expiresAt,
        },
        record: {
          type: "aws",
          id: credentials.AccessKeyId,
          issuedAt: now,
          expiresAt,
          attributes: {
            role_arn: route.roleArn,
            session_name: sessionName,
            source_identity: identity,
            grant_id: grant,
            session_expires_at: new Date(expiration).toISOString(),
          },
        },
      };
    },
  };
}
