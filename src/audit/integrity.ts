import type {
  AuditIntegrity,
  CheckpointSummary,
  IntegrityReport,
} from "../ports/audit-integrity.js";
import type { Clock } from "../ports/clock.js";
import type { Checkpoint } from "./checkpoint.js";
import type { CheckpointSigner } from "./checkpoint-key.js";
import type { FileAuditLog } from "./file-audit-log.js";
import { verifyAuditLog } from "./verify-log.js";

/** What integrity checks read of a log: where it is, how far it is fsynced, its last checkpoint. */
export type AuditLogView = Pick<FileAuditLog, "dir" | "lastSeq" | "lastCheckpoint">;

export interface AuditIntegrityOptions {
  readonly log: AuditLogView;
  readonly signer: CheckpointSigner;
  readonly clock: Clock;
}

function summary(cp: Checkpoint): CheckpointSummary {
  return { seq: cp.seq, hash: cp.hash, time: cp.time, keyId: cp.key_id };
}

/** Integrity checks of a log (this process's own, or its primary's), with its checkpoint key. */
export function createAuditIntegrity(options: AuditIntegrityOptions): AuditIntegrity {
  const { log, signer, clock } = options;
  const keys = new Map([[signer.keyId, signer.publicKey]]);
  let last: IntegrityReport | undefined;
  let running: Promise<IntegrityReport> | undefined;

  async function run(): Promise<IntegrityReport> {
    const started = performance.now();
    const upToSeq = log.lastSeq();
    const result = await verifyAuditLog({ dir: log.dir, keys, upToSeq }).catch(
      (error: unknown) => error as Error,
    );
    const took = () => ({
      checkedAt: clock.now(),
      durationMs: Math.round(performance.now() - started),
    });
    if (result instanceof Error) {
      // A log that cannot be read (a segment gone from under its name, a disk
      // error) is a failed check: the last report must not stay up as the answer.
      // The error's code only: its message names paths on the host.
      const code = (result as NodeJS.ErrnoException).code ?? result.name;
      return { ...took(), ok: false, entries: 0, reason: `the log could not be read (${code})` };
    }
    const base = { ...took(), entries: result.entries };
    return result.ok
      ? {
          ...base,
          ok: true,
          checkpoints: result.checkpoints,
          lastCheckpoint: summary(result.lastCheckpoint),
        }
      : {
          ...base,
          ok: false,
          firstBadSeq: result.firstBadSeq,
          reason: result.reason,
          ...(result.segment !== undefined ? { segment: result.segment } : {}),
          ...(result.line !== undefined ? { line: result.line } : {}),
        };
  }

  return {
    checkpointKey: () => ({ keyId: signer.keyId, jwk: { ...signer.publicJwk } }),
    lastCheckpoint() {
      const cp = log.lastCheckpoint();
      return cp === undefined ? undefined : summary(cp);
    },
    lastSeq: () => log.lastSeq(),
    lastReport: () => last,
    verifyNow() {
      running ??= run()
        .then((report) => {
          last = report;
          return report;
        })
        .finally(() => {
          running = undefined;
        });
      return running;
    },
  };
}
