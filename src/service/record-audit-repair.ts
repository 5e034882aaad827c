import { type DomainEvent, NO_REQUEST } from "../domain/events.js";
import { SYSTEM_ACTOR } from "../domain/principal.js";
import type { BrokerDeps } from "./deps.js";
import { assertAuditable, persist } from "./record.js";

/** What opening the audit log cut away; sizes and file names only. */
export interface AuditRepair {
  /** Which log, relative to the audit directory (`.` or `replicas/2`). */
  readonly log: string;
  readonly segment?: string;
  readonly droppedBytes: number;
  readonly checkpointDroppedBytes: number;
}

/**
 * Records that opening the audit log cut a torn write left by a crash. The repair
 * changes the evidence, so it is evidence itself: an `audit.repaired` event in the
 * stream and in the log, right after the entry the cut left last. It belongs to no
 * request (`request_id` is "", `NO_REQUEST`).
 */
export async function recordAuditRepair(deps: BrokerDeps, repair: AuditRepair): Promise<void> {
  const event: DomainEvent = {
    type: "audit.repaired",
    requestId: NO_REQUEST,
    actor: SYSTEM_ACTOR,
    time: deps.clock.now(),
    data: {
      log: repair.log,
      ...(repair.segment !== undefined ? { segment: repair.segment } : {}),
      dropped_bytes: repair.droppedBytes,
      checkpoint_dropped_bytes: repair.checkpointDroppedBytes,
    },
  };
  assertAuditable(deps, [event]);
  await persist(deps, await deps.store.append([event]));
}
