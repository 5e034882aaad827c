/** A signed checkpoint of the audit log, as shown to people. */
export interface CheckpointSummary {
  readonly seq: number;
  readonly hash: string;
  /** RFC 3339, as signed. */
  readonly time: string;
  readonly keyId: string;
}

/** The outcome of one verification of the audit log. */
export interface IntegrityReport {
  /** When the check finished (ms, writ's clock). */
  readonly checkedAt: number;
  readonly durationMs: number;
  readonly ok: boolean;
  /** Entries that verified (all of them when `ok`). */
  readonly entries: number;
  /** When not `ok`: the first seq that cannot be trusted, and why. */
  readonly firstBadSeq?: number;
  readonly reason?: string;
  readonly segment?: string;
  readonly line?: number;
  /** When `ok`: how many checkpoints were checked and the last one. */
  readonly checkpoints?: number;
  readonly lastCheckpoint?: CheckpointSummary;
}

/**
 * The audit log's public checkpoint key and its integrity checks, for the API
 * (`GET /v1/audit/checkpoint-key`) and the console. Verifying reads the whole log,
 * so only one check runs at a time; callers asking meanwhile share its result.
 */
export interface AuditIntegrity {
  /** The public key that signs checkpoints (a JWK) and its id (RFC 7638 thumbprint). */
  checkpointKey(): { readonly keyId: string; readonly jwk: Readonly<Record<string, string>> };
  /** The last checkpoint this process wrote or found. */
  lastCheckpoint(): CheckpointSummary | undefined;
  /** The last fsynced seq. */
  lastSeq(): number;
  /** The result of the last check, if one ran. */
  lastReport(): IntegrityReport | undefined;
  /** Verifies the log up to its last fsynced entry, with the checkpoint key. */
  verifyNow(): Promise<IntegrityReport>;
}
