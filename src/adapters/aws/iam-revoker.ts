import { GetRolePolicyCommand, type IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { WritError } from "../../domain/errors.js";
import type { AccessRequest } from "../../domain/request.js";
import type { RevokedAtSource } from "../../domain/revocation.js";
import type { Clock } from "../../ports/clock.js";
import type { Logger } from "../../ports/logger.js";
import type { CredentialRevoker } from "../../ports/revoker.js";
import {
  CLOCK_SKEW_MS,
  collapseRevocations,
  deniesGrant,
  parseRevocationPolicy,
  pruneRevocations,
  type RevocationDocument,
  ROLE_INLINE_POLICIES_MAX_CHARS,
  renderRevocationPolicy,
  withGrant,
} from "./revocation-policy.js";
import { awsErrorCode, awsFailure } from "./sdk-errors.js";

export interface IamRevokerOptions {
  /** An IAM client; its endpoint and credentials follow the SDK's conventions. */
  readonly iam: IAMClient;
  /** The inline role policy writ owns on every target role. */
  readonly policyName: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Read, change, write, read back: tries before giving up when other writers keep winning. */
const MAX_WRITES = 3;

/** The name writ records as `at_source` for sessions it ends through IAM. */
export const IAM_REVOKER_SOURCE = "aws-iam";

/**
 * How the role's policy denies a session: its grant is listed, or (when the list
 * no longer fits) every writ session of the role issued before a moment is.
 */
type DenyForm = "grant" | "all_earlier_sessions";

/** The role name in a role ARN (IAM's policy calls take the name, without the path). */
export function roleNameOf(roleArn: string): string {
  const name = roleArn.slice(roleArn.lastIndexOf("/") + 1);
  if (!/^[\w+=,.@-]{1,64}$/.test(name)) throw new TypeError("not a role ARN");
  return name;
}

/**
 * Ends AWS sessions early. An STS session cannot be recalled, so writ denies it
 * everything through an inline policy on its role that matches the session's
 * `writ-grant` tag. Each write also prunes the entries of sessions that have
 * ended anyway, and if the list would still break IAM's size limit it is
 * replaced by one deny of every writ session issued before now. IAM applies the
 * change within seconds to minutes (it is eventually consistent).
 */
export function createIamRevoker(options: IamRevokerOptions): CredentialRevoker {
  const { iam, policyName, clock, logger } = options;
  // One read-modify-write at a time per role within this process; across
  // replicas, reading back after each write catches a lost update.
  const queues = new Map<string, Promise<unknown>>();

  function serialized<T>(roleName: string, work: () => Promise<T>): Promise<T> {
    const previous = queues.get(roleName) ?? Promise.resolve();
    const run = previous.then(work, work);
    const settled = run.catch(() => undefined);
    queues.set(roleName, settled);
    void settled.then(() => {
      if (queues.get(roleName) === settled) queues.delete(roleName);
    });
    return run;
  }

  async function read(roleName: string): Promise<RevocationDocument> {
    try {
      const output = await iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }),
      );
      // IAM returns policy documents URL-encoded.
      const text =
        output.PolicyDocument === undefined ? undefined : decodeURIComponent(output.PolicyDocument);
      return parseRevocationPolicy(text);
    } catch (error) {
      const code = awsErrorCode(error);
      if (code === "NoSuchEntity" || code === "NoSuchEntityException") {
        return parseRevocationPolicy(undefined);
      }
      throw awsFailure(error, "iam:GetRolePolicy", logger, { role: roleName });
    }
  }

  /** Writes the document; false when IAM refuses it for the role's total size. */
  async function write(roleName: string, document: string): Promise<boolean> {
    try {
      await iam.send(
        new PutRolePolicyCommand({
          RoleName: roleName,
          PolicyName: policyName,
          PolicyDocument: document,
        }),
      );
      return true;
    } catch (error) {
      const code = awsErrorCode(error);
      if (code === "LimitExceeded" || code === "LimitExceededException") return false;
      throw awsFailure(error, "iam:PutRolePolicy", logger, { role: roleName });
    }
  }

  function formOf(doc: RevocationDocument, grant: string): DenyForm {
    return doc.grants.includes(grant) ? "grant" : "all_earlier_sessions";
  }

  async function deny(roleName: string, grant: string, issuedAt: number): Promise<DenyForm> {
    for (let attempt = 0; attempt < MAX_WRITES; attempt++) {
      const now = clock.now();
      const current = pruneRevocations(await read(roleName), now);
      if (deniesGrant(current, grant, issuedAt)) return formOf(current, grant);
      const listed = withGrant(current, grant);
      const text = renderRevocationPolicy(listed);
      let written = text.length <= ROLE_INLINE_POLICIES_MAX_CHARS && (await write(roleName, text));
      if (!written) {
        const compact = collapseRevocations(current, Math.max(now, issuedAt) + 2 * CLOCK_SKEW_MS);
        logger.warn("AWS revocation list full: denying every earlier writ session of the role", {
          role: roleName,
          grants: listed.grants.length,
        });
        written = await write(roleName, renderRevocationPolicy(compact));
        if (!written) {
          throw new WritError(
            "aws_error",
            "The role's inline policies leave no room for writ's revocation policy.",
          );
        }
      }
      const stored = await read(roleName);
      if (deniesGrant(stored, grant, issuedAt)) return formOf(stored, grant);
      logger.warn("AWS revocation overwritten by a concurrent writer; writing again", {
        role: roleName,
      });
    }
    throw new WritError("conflict", "The role's revocation policy kept changing; try again.");
  }

  return {
    type: "aws",
    source: IAM_REVOKER_SOURCE,
    async revoke(request: AccessRequest, reason): Promise<RevokedAtSource | undefined> {
      const credential = request.credential;
      const attributes = credential?.attributes ?? {};
      const roleArn = attributes.role_arn;
      const grant = attributes.grant_id;
      const sessionEnd = Date.parse(attributes.session_expires_at ?? "");
      if (credential === undefined || roleArn === undefined || grant === undefined) {
        // Fail closed: a session writ cannot name cannot be denied, so say so.
        throw new WritError("internal_error", "The credential's AWS session is not on record.");
      }
      // The session has ended at STS already: nothing is left to deny.
      if (!Number.isNaN(sessionEnd) && sessionEnd <= clock.now()) return undefined;
      const roleName = roleNameOf(roleArn);
      const form = await serialized(roleName, () => deny(roleName, grant, credential.issuedAt));
      logger.info("AWS session denied through the role's revocation policy", {
        request_id: request.id,
        reason,
        role_arn: roleArn,
        session_name: attributes.session_name,
        access_key_id: credential.id,
        deny: form,
      });
      return {
        source: IAM_REVOKER_SOURCE,
        details: {
          role_arn: roleArn,
          policy_name: policyName,
          grant_id: grant,
          ...(attributes.session_name !== undefined
            ? { session_name: attributes.session_name }
            : {}),
          deny: form,
        },
      };
    },
  };
}
