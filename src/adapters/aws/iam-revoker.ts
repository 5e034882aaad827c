import { GetRolePolicyCommand, type IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import { WritError } from "../../domain/errors.js";
import type { AccessRequest } from "../../domain/request.js";
import type { RevokedAtSource } from "../../domain/revocation.js";
import type { Clock } from "../../ports/clock.js";
import type { DeniedSession, DeniedSessionLedger } from "../../ports/denied-sessions.js";
import type { Logger } from "../../ports/logger.js";
import type { CredentialRevoker } from "../../ports/revoker.js";
import type { SharedLock } from "../../ports/shared-lock.js";
import { systemTimer, type Timer } from "../../ports/timer.js";
import { createMemoryDeniedSessions } from "../memory-denied-sessions.js";
import {
  CLOCK_SKEW_MS,
  collapseRevocations,
  deniesGrant,
  grantSessionEnd,
  MAX_STS_SESSION_MS,
  parseRevocationPolicy,
  pruneRevocations,
  type RevocationDocument,
  ROLE_INLINE_POLICIES_MAX_CHARS,
  renderRevocationPolicy,
  sessionMayBeLive,
  withGrant,
} from "./revocation-policy.js";
import { createRevocationRecheck } from "./revocation-recheck.js";
import { awsErrorCode, awsFailure } from "./sdk-errors.js";

export interface IamRevokerOptions {
  /** An IAM client; its endpoint and credentials follow the SDK's conventions. */
  readonly iam: IAMClient;
  /**
   * An STS client with the same credentials as `iam`: it tells which account
   * those credentials belong to, the only account whose roles IAM changes.
   */
  readonly sts: STSClient;
  /** The inline role policy writ owns on every target role. */
  readonly policyName: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Wakes the background re-checks of written denies; real time by default. */
  readonly timer?: Timer;
  /**
   * A lock shared by every writ process on the same store, taken around each
   * change of a role's policy. Without it only this process's own changes are
   * ordered, which is enough for the memory store (one process).
   */
  readonly lock?: SharedLock;
  /**
   * Where the sessions writ set out to deny are kept. Shared by every writ
   * process on the store (Redis), each write of a role's policy carries every
   * process's live denies, and every process re-checks them all; by default
   * this process's memory, which is enough for the memory store.
   */
  readonly ledger?: DeniedSessionLedger;
}

/** The IAM revoker, with the background re-checks it runs until `close`. */
export interface IamRevoker extends CredentialRevoker {
  /** Stops the background re-checks (at shutdown). */
  close(): void;
}

/** The name writ records as `at_source` for sessions it ends through IAM. */
export const IAM_REVOKER_SOURCE = "aws-iam";

/**
 * How the role's policy denies a session: its grant is listed, or (when the list
 * no longer fits) every writ session of the role issued before a moment is.
 */
type DenyForm = "grant" | "all_earlier_sessions";

/** What one change of a role's policy found and did. */
interface PolicyChange {
  /** The policy as this change left it (or found it, when nothing was missing). */
  readonly doc: RevocationDocument;
  /** The grants the change had to add. */
  readonly added: readonly string[];
}

/** The role name in a role ARN (IAM's policy calls take the name, without the path). */
export function roleNameOf(roleArn: string): string {
  const name = roleArn.slice(roleArn.lastIndexOf("/") + 1);
  if (!/^[\w+=,.@-]{1,64}$/.test(name)) throw new TypeError("not a role ARN");
  return name;
}

/** The account a role ARN names. */
function roleAccountOf(roleArn: string): string | undefined {
  return /^arn:[^:]+:iam::(\d{12}):role\//.exec(roleArn)?.[1];
}

/**
 * Ends AWS sessions early. An STS session cannot be recalled, so writ denies it
 * everything through an inline policy on its role that matches the session's
 * `writ-grant` tag. Each write also prunes the entries of sessions that have
 * ended anyway, and if the list would still break IAM's size limit it is
 * replaced by one deny of every writ session issued before now. IAM applies the
 * change within seconds to minutes (it is eventually consistent).
 *
 * IAM offers no conditional write, so a change is a read, an edit and a whole
 * new document. Every deny is first recorded in the ledger; changes of one
 * role are ordered within this process and, with a shared lock, across
 * processes; every write carries the ledger's live denies of the role, so a
 * read that has not yet seen an earlier write cannot drop them; and each deny
 * is checked again in the background until its session ends, and written
 * again if a concurrent write lost it (by any process, with a shared ledger).
 */
export function createIamRevoker(options: IamRevokerOptions): IamRevoker {
  const { iam, sts, policyName, clock, logger, lock } = options;
  const ledger = options.ledger ?? createMemoryDeniedSessions();
  // One read-modify-write at a time per role within this process.
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

  /** Runs a change of the role's policy after every earlier one, here and, with the lock, anywhere. */
  function changing<T>(roleName: string, work: () => Promise<T>): Promise<T> {
    return serialized(roleName, () =>
      lock === undefined ? work() : lock.withLock(`aws-revocations:${roleName}`, work),
    );
  }

  // Asked once; a failed answer is asked again on the next revocation.
  let ownAccount: Promise<string> | undefined;
  function callerAccount(): Promise<string> {
    ownAccount ??= (async () => {
      try {
        const { Account } = await sts.send(new GetCallerIdentityCommand({}));
        if (Account === undefined) {
          throw new WritError("aws_error", "STS did not name writ's account.");
        }
        return Account;
      } catch (error) {
        throw awsFailure(error, "sts:GetCallerIdentity", logger);
      }
    })().catch((error: unknown) => {
      ownAccount = undefined;
      throw error;
    });
    return ownAccount;
  }

  /**
   * IAM names a role by its name alone, in the account of the credentials that
   * call it: for a role in another account, the deny would be written on a
   * role of the same name in writ's own account (or fail), and the session it
   * was meant for would go on working.
   */
  async function assertOwnAccount(roleArn: string): Promise<void> {
    const account = await callerAccount();
    const roleAccount = roleAccountOf(roleArn);
    if (roleAccount === account) return;
    logger.error("AWS session on a role outside writ's own account cannot be ended early", {
      role_arn: roleArn,
      account,
    });
    throw new WritError(
      "aws_role_not_configured",
      "The role is not in writ's own AWS account, where IAM could end its sessions.",
    );
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

  /**
   * Reads the role's policy and, if it does not deny every one of `sessions`,
   * writes it back with the missing grants added (or, when that cannot fit, in
   * the compact form). Run only inside `changing`.
   */
  async function denyAll(
    roleName: string,
    sessions: readonly DeniedSession[],
  ): Promise<PolicyChange> {
    const now = clock.now();
    // What writ is asked to deny stays, even past its grant id's own end.
    const live = new Set(sessions.map((s) => s.grant));
    const current = pruneRevocations(await read(roleName), now, live);
    const missing = sessions.filter((s) => !deniesGrant(current, s.grant, s.issuedAt));
    if (missing.length === 0) return { doc: current, added: [] };
    const added = missing.map((s) => s.grant);
    const listed = added.reduce(withGrant, current);
    const text = renderRevocationPolicy(listed);
    if (text.length <= ROLE_INLINE_POLICIES_MAX_CHARS && (await write(roleName, text))) {
      return { doc: listed, added };
    }
    const latest = Math.max(now, ...missing.map((s) => s.issuedAt));
    const compact = collapseRevocations(current, latest + 2 * CLOCK_SKEW_MS);
    logger.warn("AWS revocation list full: denying every earlier writ session of the role", {
      role: roleName,
      grants: listed.grants.length,
    });
    if (!(await write(roleName, renderRevocationPolicy(compact)))) {
      throw new WritError(
        "aws_error",
        "The role's inline policies leave no room for writ's revocation policy.",
      );
    }
    return { doc: compact, added };
  }

  /** `sessions` and every other live deny of the role on record, read inside `changing`. */
  async function recorded(
    roleName: string,
    sessions: readonly DeniedSession[],
  ): Promise<DeniedSession[]> {
    const all = new Map(sessions.map((s) => [s.grant, s]));
    for (const s of await ledger.live(roleName, clock.now()))
      if (!all.has(s.grant)) all.set(s.grant, s);
    return [...all.values()];
  }

  const recheck = createRevocationRecheck({
    clock,
    timer: options.timer ?? systemTimer,
    logger,
    async recheck(roleName, sessions) {
      const { added } = await changing(roleName, async () =>
        denyAll(roleName, await recorded(roleName, sessions)),
      );
      return [...added];
    },
    ...(ledger.shared ? { shared: ledger } : {}),
  });

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
      const session: DeniedSession = {
        grant,
        issuedAt: credential.issuedAt,
        endsAt: Number.isNaN(sessionEnd)
          ? (grantSessionEnd(grant) ?? credential.issuedAt + MAX_STS_SESSION_MS)
          : sessionEnd,
      };
      // The session has ended at STS already, even by a clock at AWS running
      // behind writ's: nothing is left to deny.
      if (!sessionMayBeLive(session.endsAt, clock.now())) return undefined;
      const roleName = roleNameOf(roleArn);
      await assertOwnAccount(roleArn);
      // On record first: from here on every write of the role's policy, by any
      // process sharing the ledger, carries this deny, and any of them that
      // finds it missing writes it back, even if this process stops.
      const claim = await ledger.add(
        roleName,
        session,
        session.endsAt + CLOCK_SKEW_MS,
        clock.now(),
      );
      let doc: RevocationDocument;
      try {
        ({ doc } = await changing(roleName, async () =>
          denyAll(roleName, await recorded(roleName, [session])),
        ));
      } catch (error) {
        // The caller is told the session lives on and may retry; left on record,
        // the deny would be written by the next write of the role, or another
        // process's sweep, with no record of who ended the session or why.
        // Only this call's own claim is withdrawn: another end of the same
        // session (an expiry's, say) that recorded it too, and whose write may
        // have carried it already, keeps it on record.
        await ledger.withdraw(roleName, session, claim).catch((removal: unknown) => {
          logger.warn("AWS revocation not written could not be taken off the ledger", {
            role: roleName,
            grant,
            error: (removal as { code?: unknown }).code ?? "unknown",
          });
        });
        throw error;
      }
      const form: DenyForm = doc.grants.includes(grant) ? "grant" : "all_earlier_sessions";
      recheck.watch(roleName, session);
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
    close() {
      recheck.close();
    },
  };
}
