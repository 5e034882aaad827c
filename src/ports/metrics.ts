import type { RecordedEvent } from "../domain/events.js";
import type { AccessRequest } from "../domain/request.js";

/**
 * Operational measurements of this process. Labels are drawn from bounded sets
 * (route templates, event types, error codes), never from ids, paths or input,
 * so a hostile caller cannot grow the series without bound. Nothing recorded
 * here is a secret.
 */
export interface Metrics {
  /**
   * One HTTP request answered. `route` is the registered route template
   * (`/v1/requests/:id`), never the raw path.
   */
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  /** Events this process committed for `request` (decisions, issuance, replays, approvals). */
  observeEvents(request: AccessRequest, events: readonly RecordedEvent[]): void;
  /** A call to Redis failed; `operation` names the store or limiter operation. */
  countRedisError(operation: string): void;
  /** A caller was refused by the rate limiter. */
  countRateLimited(): void;
}
