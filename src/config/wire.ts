import { join, resolve } from "node:path";
import { loadOrCreateKeyRing } from "../adapters/jwt-keys.js";
import { createJwtMinter, createJwtVerifier } from "../adapters/jwt-minter.js";
import { createKeyDirectory, type KeyedPrincipal } from "../adapters/key-identity.js";
import { createMemoryStore } from "../adapters/memory-store.js";
import { openReplicaLog } from "../audit/replica-log.js";
import { createStreamFollowingLog } from "../audit/stream-follower.js";
import { createApp } from "../http/app.js";
import { createCedarPolicyEngine } from "../policy/cedar-engine.js";
import { type Clock, systemClock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { Notifier } from "../ports/notifier.js";
import type { RequestStore } from "../ports/store.js";
import { createBroker } from "../service/broker.js";
import type { WritConfig } from "./schema.js";

export interface AssembleOptions {
  clock?: Clock;
  logger: Logger;
  /** Identities added to those in the configuration (the demo ones in dev mode). */
  extraPrincipals?: readonly KeyedPrincipal[];
  notifiers?: readonly Notifier[];
  /** Defaults to the embedded memory store. */
  store?: RequestStore;
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
      keySha256: a.key_sha256,
    })),
    ...reviewers.map((r) => ({
      kind: "reviewer" as const,
      id: r.id,
      groups: r.groups,
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
  const keys = await loadOrCreateKeyRing(
    config.jwt.keys_file ?? join(dataDir, "keys", "jwt.json"),
    config.jwt.algorithm,
  );
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
  const store = options.store ?? createMemoryStore();
  const { log: auditFile } = await openReplicaLog(config.audit.dir ?? join(dataDir, "audit"));
  const auditLog = createStreamFollowingLog({
    store,
    file: auditFile,
    logger,
    after: store.persistent ? auditFile.tailEventIdAtOpen : undefined,
  });
  const jwtOptions = { keys, issuer: config.issuer };
  const broker = createBroker({
    store,
    auditLog,
    policy,
    identities: createKeyDirectory([
      ...configuredPrincipals(config),
      ...(options.extraPrincipals ?? []),
    ]),
    minters: { jwt: createJwtMinter(jwtOptions) },
    verifier: createJwtVerifier(jwtOptions),
    notifiers: options.notifiers ?? [],
    clock,
    logger,
    timing: { collectWindowSeconds: config.requests.collect_window_seconds },
  });
  if (auditFile.repaired !== undefined) {
    logger.warn("audit log had a torn final line; repaired", {
      dropped_bytes: auditFile.repaired.droppedBytes,
    });
  }
  const app = createApp({
    broker,
    jwks: () => keys.jwks(),
    logger,
    maxBodyBytes: config.server.max_body_bytes,
  });
  return {
    app,
    broker,
    keys,
    policy,
    auditLog,
    auditFile,
    async close() {
      policy.close();
      // The log first: it writes what the stream still holds, then the store goes.
      await auditLog.close();
      await store.close();
    },
  };
}

export type Writ = Awaited<ReturnType<typeof assembleWrit>>;
