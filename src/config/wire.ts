import { join, resolve } from "node:path";
import { type JwtKeyRing, loadOrCreateKeyRing } from "../adapters/jwt-keys.js";
import { createJwtMinter, createJwtTokenReader } from "../adapters/jwt-minter.js";
import { createKeyDirectory, type KeyedPrincipal } from "../adapters/key-identity.js";
import { createMemoryStore } from "../adapters/memory-store.js";
import { createOidcAuthenticator, withOidcAgents } from "../adapters/oidc-identity.js";
import type { FileAuditLog } from "../audit/file-audit-log.js";
import { createAuditIntegrity } from "../audit/integrity.js";
import type { AuditLogReport, RemoteAuditLog } from "../audit/remote-log.js";
import { createStreamFollowingLog } from "../audit/stream-follower.js";
import type { SessionStore } from "../console/sessions.js";
import { createApp } from "../http/app.js";
import { createCedarPolicyEngine } from "../policy/cedar-engine.js";
import { type Clock, systemClock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { Metrics } from "../ports/metrics.js";
import type { NotificationState } from "../ports/notification-state.js";
import type { Notifier } from "../ports/notifier.js";
import type { RateLimiter } from "../ports/rate-limiter.js";
import type { RequestStore, StreamGap } from "../ports/store.js";
import { createBroker } from "../service/broker.js";
import { createRecentRequests } from "../service/recent-requests.js";
import { recordAuditGap } from "../service/record-audit-gap.js";
import { recordAuditRepair } from "../service/record-audit-repair.js";
import { createWaitLimit } from "../service/wait-limit.js";
import type { WritConfig } from "./schema.js";
import { loadCheckpointSigner, openAuditLog } from "./wire-audit.js";
import type { SharedRevocations } from "./wire-aws.js";
import { type AwsClients, createAwsCredentials } from "./wire-aws.js";
import { prepareNotifications } from "./wire-notify.js";
import { wireOperations } from "./wire-operations.js";

export interface AssembleOptions {
  clock?: Clock;
  logger: Logger;
  /** Identities added to those in the configuration (the demo ones in dev mode). */
  extraPrincipals?: readonly KeyedPrincipal[];
  notifiers?: readonly Notifier[];
  /** Defaults to the embedded memory store. */
  store?: RequestStore;
  /** Signing keys loaded by the caller; `writ serve` never lets wiring generate them. */
  keys?: JwtKeyRing;
  /**
   * Whether a missing audit checkpoint key may be generated (default true, as in
   * `writ dev`); false makes a missing key an error, as production needs.
   */
  createCheckpointKey?: boolean;
  /** A shared rate limiter (Redis); defaults to one held in this process. */
  rateLimiter?: RateLimiter;
  /** A shared limiter of resource servers' consumes (Redis); defaults to one held in this process. */
  consumeRateLimiter?: RateLimiter;
  /** Where to count requests, decisions, issuance and Redis errors (`/metrics`). */
  metrics?: Metrics;
  /** AWS SDK clients to use instead of those the configuration builds. */
  awsClients?: AwsClients;
  /** Slack user ids of reviewers not in the configuration (the demo ones in dev mode). */
  slackUserIds?: Readonly<Record<string, string>>;
  /** Notification state shared by replicas (Redis); defaults to one held in this process. */
  notificationState?: NotificationState;
  /**
   * The lock and the ledger of denied sessions that every process on the
   * same Redis shares for AWS revocations; without them, this process keeps
   * its own.
   */
  revocations?: SharedRevocations;
  /**
   * Told how far this process's audit log (in `logDir`) has fsynced the event
   * stream: the Redis store records it so that stream trimming never passes it.
   * The first call may answer a gap (the stream was trimmed past the log), which
   * is recorded as an `audit.gap` event.
   */
  onAuditDurable?: (
    cursor: string | undefined,
    logDir: string,
  ) => Promise<StreamGap | undefined> | Promise<void> | void;
  /**
   * A worker process: its audit log is kept by its primary (which reports to
   * it), and background work (notification delivery) is left to the primary.
   */
  remoteAudit?: RemoteAuditLog;
  /** A primary process: told how far its audit log reached after every fsync, for its workers. */
  onAuditReport?: (report: AuditLogReport) => void;
  /** Console sessions shared by every process (Redis); defaults to this process's memory. */
  consoleSessions?: SessionStore;
}

/** Converts configured identities to directory entries. */
export function configuredPrincipals(config: WritConfig): KeyedPrincipal[] {
  const { agents, reviewers, auditors, resource_servers } = config.identities;
  return [
    ...agents.map((a) => ({
      kind: "agent" as const,
      id: a.id,
      owner: a.owner,
      attributes: a.attributes,
      ...(a.acts_for !== undefined ? { actsFor: a.acts_for } : {}),
      keySha256: a.key_sha256,
    })),
    ...reviewers.map((r) => ({
      kind: "reviewer" as const,
      id: r.id,
      groups: r.groups,
      ...(r.email !== undefined ? { email: r.email } : {}),
      keySha256: r.key_sha256,
    })),
    ...auditors.map((u) => ({ kind: "auditor" as const, id: u.id, keySha256: u.key_sha256 })),
    ...resource_servers.map((s) => ({
      kind: "resource_server" as const,
      id: s.id,
      audience: s.audience,
      keySha256: s.key_sha256,
    })),
  ];
}

/**
 * Builds a whole writ from a validated configuration: adapters behind their
 * ports, the use cases, and the HTTP app. Nothing listens yet.
 */
export async function assembleWrit(config: WritConfig, options: AssembleOptions) {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const dataDir = resolve(config.data_dir);
  const buildNotifications = prepareNotifications(config, {
    principals: [...configuredPrincipals(config), ...(options.extraPrincipals ?? [])],
    ...(options.slackUserIds !== undefined ? { slackUserIds: options.slackUserIds } : {}),
    ...(options.notificationState !== undefined ? { state: options.notificationState } : {}),
    clock,
    logger,
  });
  const keys =
    options.keys ??
    (await loadOrCreateKeyRing(
      config.jwt.keys_file ?? join(dataDir, "keys", "jwt.json"),
      config.jwt.algorithm,
    ));
  const policy = await createCedarPolicyEngine({
    dir: resolve(config.policies.dir),
    defaults: {
      ttlSeconds: config.requests.default_ttl_seconds,
      approvalTimeoutSeconds: config.requests.approval_timeout_seconds,
    },
    watch: config.policies.watch,
    onReload: (info) => logger.info("policies reloaded", { policies: info.policyIds.length }),
    onError: (error) =>
      logger.error("policy reload failed; keeping the last good set", {
        error: (error as Error).message,
      }),
    onEvaluationError: (errors) =>
      logger.warn("policy evaluation failed; denied", {
        errors: errors.map((e) => e.policyId ?? "request"),
      }),
  });
  const operations = wireOperations(config, options.store ?? createMemoryStore(), {
    clock,
    rateLimiter: options.rateLimiter,
    consumeRateLimiter: options.consumeRateLimiter,
    metrics: options.metrics,
  });
  const { store } = operations;
  const jwtKeysFile = config.jwt.keys_file ?? join(dataDir, "keys", "jwt.json");
  const createKey = options.createCheckpointKey ?? true;
  let auditFile: FileAuditLog | undefined;
  let repair: Awaited<ReturnType<typeof openAuditLog>>["repair"];
  let integrity: Awaited<ReturnType<typeof openAuditLog>>["integrity"];
  let auditLog: RemoteAuditLog | ReturnType<typeof createStreamFollowingLog>;
  if (options.remoteAudit !== undefined) {
    // The primary's log, checked with the replica's checkpoint key.
    const signer = await loadCheckpointSigner(config, dataDir, {
      jwtKeys: keys,
      jwtKeysFile,
      createKey: false,
    });
    auditLog = options.remoteAudit;
    integrity = createAuditIntegrity({ log: options.remoteAudit.view, signer, clock });
  } else {
    const opened = await openAuditLog(config, {
      dataDir,
      jwtKeys: keys,
      jwtKeysFile,
      createKey,
      clock,
      logger,
    });
    const file = opened.auditFile;
    ({ repair, integrity } = opened);
    auditFile = file;
    const { onAuditDurable, onAuditReport } = options;
    let cursor: string | undefined;
    /** Once the log has failed closed, no later report (at close) says otherwise. */
    let failed = false;
    const report = (writable: boolean) =>
      onAuditReport?.({
        cursor,
        writable: writable && !failed,
        dir: file.dir,
        seq: file.lastSeq(),
        checkpoint: file.lastCheckpoint(),
      });
    auditLog = createStreamFollowingLog({
      store,
      file,
      logger,
      after: store.persistent ? file.tailEventIdAtOpen : undefined,
      // A primary's workers refuse changes as soon as its log fails closed,
      // not after each of their callers has waited out the append timeout.
      ...(onAuditReport !== undefined
        ? {
            onFailed: () => {
              failed = true;
              report(false);
            },
          }
        : {}),
      ...(onAuditDurable !== undefined || onAuditReport !== undefined
        ? {
            async onDurable(durable): Promise<StreamGap | undefined> {
              cursor = durable;
              report(file.writable());
              return (await onAuditDurable?.(durable, file.dir)) ?? undefined;
            },
            // A log that lacks trimmed events says so in the record itself.
            onGap: (gap) => recordAuditGap({ store, clock }, gap),
          }
        : {}),
    });
  }
  const jwtOptions = { keys, issuer: config.issuer };
  const aws = await createAwsCredentials(config.aws, {
    clock,
    logger,
    clients: options.awsClients,
    revocations: options.revocations,
  });
  const broker = createBroker({
    store,
    auditLog,
    policy,
    identities: withOidcAgents(
      createKeyDirectory([...configuredPrincipals(config), ...(options.extraPrincipals ?? [])]),
      config.identities.oidc.length > 0
        ? createOidcAuthenticator({ issuers: config.identities.oidc, clock })
        : undefined,
    ),
    minters: { jwt: createJwtMinter(jwtOptions), ...(aws ? { aws: aws.minter } : {}) },
    ...(aws ? { revokers: { aws: aws.revoker } } : {}),
    tokens: createJwtTokenReader(jwtOptions),
    notifiers: [...(options.notifiers ?? []), ...operations.notifiers],
    clock,
    logger,
    timing: { collectWindowSeconds: config.requests.collect_window_seconds },
    rateLimiter: operations.rateLimiter,
    consumeRateLimiter: operations.consumeRateLimiter,
    waitLimit: createWaitLimit(config.requests.max_waits_per_principal),
    recent: createRecentRequests(),
    stopping: operations.stopping.signal,
  });
  if (repair !== undefined) {
    logger.warn("audit log had a torn final line; repaired", {
      dropped_bytes: repair.droppedBytes,
    });
    // The cut is evidence too: it goes into the stream and the log as audit.repaired.
    // Until it is there, the log reports the cut again at every open.
    try {
      await recordAuditRepair(broker.deps, repair);
      await auditFile?.repairRecorded();
    } catch (error) {
      // Nothing serves yet: release the log, so that the next start can record it.
      policy.close();
      await auditLog.close().catch(() => {});
      aws?.close();
      throw error;
    }
  }
  const notifications = await buildNotifications(broker.deps);
  const app = createApp({
    broker,
    extraRoutes: notifications.routes,
    jwks: () => keys.jwks(),
    logger,
    maxBodyBytes: config.server.max_body_bytes,
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    mcp: { enabled: config.mcp.http, returnCredentials: config.mcp.return_credentials },
    audit: integrity,
    ...(config.console.enabled
      ? {
          console: {
            idleTimeoutSeconds: config.console.idle_timeout_seconds,
            sessionMaxSeconds: config.console.session_max_seconds,
            // `writ serve` sets it (default on) before it gets here; unset is `writ dev`.
            secureCookies: config.console.secure_cookies ?? false,
            ...(options.consoleSessions !== undefined ? { sessions: options.consoleSessions } : {}),
          },
        }
      : {}),
  });
  // Delivery workers follow the event stream beside requests, never inside them;
  // in a worker process, its primary runs them.
  if (options.remoteAudit === undefined) notifications.start();
  return {
    app,
    broker,
    keys,
    policy,
    auditLog,
    auditFile,
    auditIntegrity: integrity,
    /** Ends long-polls and reports not ready: the first step of a graceful stop. */
    beginShutdown() {
      operations.stopping.abort();
    },
    notifications,
    async close() {
      // Long-polls and background retries stop waiting (idempotent after beginShutdown).
      operations.stopping.abort();
      // Workers first: they read the stream and the store until they stop.
      await notifications.close();
      policy.close();
      // The log first: it writes what the stream still holds, then the store goes.
      await auditLog.close();
      await store.close();
      aws?.close();
    },
  };
}

export type Writ = Awaited<ReturnType<typeof assembleWrit>>;
