import { join, relative, resolve } from "node:path";
import type { JwtKeyRing } from "../adapters/jwt-keys.js";
import { CheckpointKeyError, loadCheckpointKey } from "../audit/checkpoint-key.js";
import { createAuditIntegrity } from "../audit/integrity.js";
import { openReplicaLog } from "../audit/replica-log.js";
import type { AuditIntegrity } from "../ports/audit-integrity.js";
import type { Clock } from "../ports/clock.js";
import type { Logger } from "../ports/logger.js";
import type { AuditRepair } from "../service/record-audit-repair.js";
import { ConfigError } from "./load.js";
import type { WritConfig } from "./schema.js";

interface CheckpointKeyOptions {
  jwtKeys: JwtKeyRing;
  jwtKeysFile: string;
  /** Generate the checkpoint key if it is missing (dev), or refuse to start (production). */
  createKey: boolean;
}

/**
 * Loads the audit checkpoint key. It is an Ed25519 key of its own: a JWT signing
 * key (file or key material) is refused, so a leak of one cannot forge the other.
 */
export async function loadCheckpointSigner(
  config: WritConfig,
  dataDir: string,
  options: CheckpointKeyOptions,
) {
  const keyFile = resolve(
    config.audit.checkpoint_key_file ?? join(dataDir, "keys", "checkpoint.json"),
  );
  if (keyFile === resolve(options.jwtKeysFile)) {
    throw new ConfigError("audit.checkpoint_key_file must not be the JWT key file");
  }
  const { signer } = await loadCheckpointKey(keyFile, { create: options.createKey }).catch(
    (error: unknown) => {
      throw error instanceof CheckpointKeyError ? new ConfigError(error.message) : error;
    },
  );
  if (options.jwtKeys.jwks().keys.some((k) => k.x === signer.publicJwk.x)) {
    throw new ConfigError(
      "the audit checkpoint key is also a JWT signing key; give it its own key",
    );
  }
  return signer;
}

/** Opens this process's audit log with its checkpoint key (see {@link loadCheckpointSigner}). */
export async function openAuditLog(
  config: WritConfig,
  options: CheckpointKeyOptions & {
    dataDir: string;
    clock: Clock;
    logger: Logger;
  },
) {
  const { dataDir, clock, logger } = options;
  const signer = await loadCheckpointSigner(config, dataDir, options);
  const baseDir = resolve(config.audit.dir ?? join(dataDir, "audit"));
  const { log, dir } = await openReplicaLog(baseDir, {
    segmentMaxBytes: config.audit.segment_max_bytes,
    clock,
    checkpoints: {
      signer,
      everyEntries: config.audit.checkpoint_every_entries,
      everySeconds: config.audit.checkpoint_every_seconds,
      // The service log is a witness kept apart from the log directory.
      onCheckpoint: (cp) =>
        logger.info("audit checkpoint", { seq: cp.seq, hash: cp.hash, key_id: cp.key_id }),
    },
  });
  const repair: AuditRepair | undefined =
    log.repaired === undefined
      ? undefined
      : {
          log: relative(baseDir, dir) || ".",
          ...(log.repaired.segment !== undefined ? { segment: log.repaired.segment } : {}),
          droppedBytes: log.repaired.droppedBytes,
          checkpointDroppedBytes: log.repaired.checkpointDroppedBytes,
        };
  const integrity: AuditIntegrity = createAuditIntegrity({ log, signer, clock });
  return { auditFile: log, repair, integrity };
}
