import type { RecordedEvent } from "../../src/domain/events.js";
import type { JsonObject } from "../../src/domain/json.js";

/** Epoch milliseconds of the first sample event: 2023-11-14T22:13:20.000Z. */
export const SAMPLE_TIME_MS = 1_700_000_000_000;

/** The n-th sample event: distinct ids and times, plausible issuance data. */
export function sampleEvent(n: number, data?: JsonObject): RecordedEvent {
  return {
    id: `${SAMPLE_TIME_MS + n}-0`,
    type: "credential.issued",
    requestId: `req_sample${n}`,
    actor: { kind: "agent", id: "agent-billing-export" },
    time: SAMPLE_TIME_MS + n * 1000,
    data: data ?? { grant_id: `grt_${n}`, credential_type: "aws", ttl_seconds: 900 },
  };
}

export function sampleEvents(from: number, count: number): RecordedEvent[] {
  return Array.from({ length: count }, (_, i) => sampleEvent(from + i));
}
