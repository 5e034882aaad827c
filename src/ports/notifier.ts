import type { RecordedEvent } from "../domain/events.js";
import type { AccessRequest } from "../domain/request.js";

/**
 * Tells people about requests (Slack, Teams, webhooks). Called after a change is
 * committed; a failing notifier never blocks or undoes a request.
 */
export interface Notifier {
  readonly name: string;
  notify(request: AccessRequest, events: readonly RecordedEvent[]): Promise<void>;
}
