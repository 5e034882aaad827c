import type { IAMClient } from "@aws-sdk/client-iam";
import type { STSClient } from "@aws-sdk/client-sts";
import type { Clock } from "../ports/clock.js";
import type { DeniedSessionLedger } from "../ports/denied-sessions.js";
import type { Logger } from "../ports/logger.js";
import type { Minter } from "../ports/minter.js";
import type { CredentialRevoker } from "../ports/revoker.js";
import type { SharedLock } from "../ports/shared-lock.js";
import type { Timer } from "../ports/timer.js";
import type { AwsConfigValue } from "./aws-schema.js";
import { ConfigError } from "./load.js";

/** SDK clients to use instead of the ones built from the configuration (tests, embedding). */
/**
 * What every writ process on one Redis shares to end AWS sessions together:
 * a lock that has them change one role's revocation policy one at a time, and
 * the ledger of denied sessions that each write carries and each process
 * re-checks, so a deny erased by a concurrent write is restored by whichever
 * process finds it missing.
 */
export interface SharedRevocations {
  readonly lock: SharedLock;
  readonly ledger: DeniedSessionLedger;
}

export interface AwsClients {
  readonly sts: STSClient;
  readonly iam: IAMClient;
}

/** What AWS credentials need: the minter, the revoker, and the clients to close. */
export interface AwsCredentials {
  readonly minter: Minter;
  readonly revoker: CredentialRevoker;
  /** Stops the revoker's background re-checks and closes the clients writ built. */
  close(): void;
}

/** How long one AWS call may take by default; connecting may take at most 3 seconds of it. */
const REQUEST_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 3000;

/**
 * Bounded waits, so that a dead or hung endpoint answers `aws_unavailable` in
 * seconds rather than holding an agent's collect, or a role's revocation lock,
 * past its lease. The SDK only warns when a call passes `requestTimeout` unless
 * told to fail it, and otherwise waits five minutes for a silent socket.
 */
function requestHandler(timeoutMs: number) {
  return {
    connectionTimeout: Math.min(CONNECT_TIMEOUT_MS, timeoutMs),
    requestTimeout: timeoutMs,
    throwOnRequestTimeout: true,
  } as const;
}
// The SDK's standard retries: throttling and transient errors only, never a
// refusal. Both operations are safe to repeat: a retried AssumeRole at worst
// makes a session nobody receives; PutRolePolicy writes a whole document.
const MAX_ATTEMPTS = 3;
/** The longest session STS grants a role assumed with role-session credentials (role chaining). */
const ROLE_CHAINING_MAX_SECONDS = 3600;
/** How long start-up waits to learn writ's own identity before going on without knowing it. */
const IDENTITY_CHECK_MS = 5000;
/** An STS role-session ARN in any partition: `arn:aws:sts::111122223333:assumed-role/name/session`. */
const ROLE_SESSION_ARN = /^arn:aws(?:-[a-z]+)*:sts::\d{12}:assumed-role\//;

/**
 * Builds the AWS minter and revoker, or nothing when the configuration has no
 * `aws` section. The SDK clients find their region, endpoints
 * (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_IAM`, or a profile's) and writ's
 * own credentials (the default provider chain) by the SDK's conventions.
 */
export async function createAwsCredentials(
  config: AwsConfigValue | undefined,
  options: {
    clock: Clock;
    logger: Logger;
    clients?: AwsClients | undefined;
    /** Wakes the revoker's background re-checks; real time by default. */
    timer?: Timer | undefined;
    /** How long one AWS call of the clients writ builds may take (default 10,000 ms). */
    requestTimeoutMs?: number | undefined;
    /**
     * What every process on the same Redis shares for revocations. Without it
     * (the memory store is one process) this process orders its own changes
     * and keeps its own denies.
     */
    revocations?: SharedRevocations | undefined;
  },
): Promise<AwsCredentials | undefined> {
  if (config === undefined) return undefined;
  // Loaded only when AWS is configured: every CLI command starts faster without.
  const [{ STSClient }, { IAMClient }, { createAwsCatalogue }, { createIamRevoker }, aws] =
    await Promise.all([
      import("@aws-sdk/client-sts"),
      import("@aws-sdk/client-iam"),
      import("../adapters/aws/catalogue.js"),
      import("../adapters/aws/iam-revoker.js"),
      import("../adapters/aws/sts-minter.js"),
    ]);
  const region = config.region === undefined ? {} : { region: config.region };
  const handler = requestHandler(options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS);
  const clients = options.clients ?? {
    sts: new STSClient({ ...region, maxAttempts: MAX_ATTEMPTS, requestHandler: handler }),
    iam: new IAMClient({ ...region, maxAttempts: MAX_ATTEMPTS, requestHandler: handler }),
  };
  try {
    await assertIdentityFits(clients.sts, config, options.logger);
  } catch (error) {
    if (options.clients === undefined) {
      clients.sts.destroy();
      clients.iam.destroy();
    }
    throw error;
  }
  const minter = aws.createAwsMinter({
    sts: clients.sts,
    catalogue: createAwsCatalogue(),
    roles: config.roles.map((role) => ({
      resourcePattern: role.resource_pattern,
      roleArn: role.role_arn,
      ...(role.account !== undefined ? { account: role.account } : {}),
      ...(role.external_id !== undefined ? { externalId: role.external_id } : {}),
    })),
    maxSessionSeconds: config.session_duration_seconds,
    logger: options.logger,
  });
  const revoker = createIamRevoker({
    iam: clients.iam,
    sts: clients.sts,
    policyName: config.revocation_policy_name,
    clock: options.clock,
    logger: options.logger,
    ...(options.timer !== undefined ? { timer: options.timer } : {}),
    ...(options.revocations !== undefined
      ? { lock: options.revocations.lock, ledger: options.revocations.ledger }
      : {}),
  });
  return {
    minter,
    revoker,
    close() {
      revoker.close();
      // Clients passed in belong to the caller.
      if (options.clients !== undefined) return;
      clients.sts.destroy();
      clients.iam.destroy();
    },
  };
}

/**
 * Asks STS once who writ is (GetCallerIdentity needs no permission) and
 * refuses a configuration that identity cannot serve:
 * - a target role in another account than writ's own: IAM names a role by its
 *   name alone, in the caller's account, so writ could never end that role's
 *   sessions early (complete and revoke would fail for every credential);
 * - a `session_duration_seconds` above an hour when writ's own identity is a
 *   role session (on ECS, EKS, EC2 or Lambda): assuming a target role from it
 *   is role chaining, which STS caps at one hour, so every collect asking for
 *   more would fail at `AssumeRole`.
 * When STS cannot be asked, writ starts and warns: refusing would stop JWT
 * issuance too while STS is unreachable, and the revoker checks the account
 * again before every deny it writes.
 */
async function assertIdentityFits(
  sts: STSClient,
  config: AwsConfigValue,
  logger: Logger,
): Promise<void> {
  const { GetCallerIdentityCommand } = await import("@aws-sdk/client-sts");
  let arn: string | undefined;
  let account: string | undefined;
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}), {
      abortSignal: AbortSignal.timeout(IDENTITY_CHECK_MS),
    });
    arn = identity.Arn;
    account = identity.Account;
  } catch (error) {
    const { isMissingCredentials } = await import("../adapters/aws/sdk-errors.js");
    logger.warn(
      isMissingCredentials(error)
        ? "writ has no usable AWS credentials of its own: AWS credentials cannot be issued or ended early until it has. Give writ an AWS identity the SDK's credential chain finds (environment variables, web identity, an ECS or EC2 role, SSO or a profile), or check that its metadata service answers"
        : "could not ask STS who writ is: target roles must be in writ's own account for their sessions to be ended early, and if writ runs as a role, role chaining caps sessions at 3600 seconds",
      {
        session_duration_seconds: config.session_duration_seconds,
        error: error instanceof Error ? error.name : "unknown",
      },
    );
    return;
  }
  if (account !== undefined) {
    config.roles.forEach((role, index) => {
      const roleAccount = /^arn:[^:]+:iam::(\d{12}):/.exec(role.role_arn)?.[1];
      if (roleAccount === account) return;
      throw new ConfigError(
        `aws.roles[${index}].role_arn is in account ${roleAccount ?? "(none)"}, but writ's own AWS identity is in account ${account}: IAM changes roles only in the caller's account, so writ could never end this role's sessions early. Use a target role in account ${account}, or run writ with credentials of the role's account.`,
      );
    });
  }
  if (config.session_duration_seconds <= ROLE_CHAINING_MAX_SECONDS) return;
  if (arn === undefined || !ROLE_SESSION_ARN.test(arn)) return;
  throw new ConfigError(
    `aws.session_duration_seconds is ${config.session_duration_seconds}, but writ's own AWS identity is a role session (${arn}): assuming a target role from it is role chaining, which STS caps at ${ROLE_CHAINING_MAX_SECONDS} seconds, so every collect asking for a longer session would fail. Set aws.session_duration_seconds to ${ROLE_CHAINING_MAX_SECONDS} or less, or give writ credentials that are not a role session.`,
  );
}
