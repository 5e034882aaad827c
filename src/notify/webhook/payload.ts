import { createHmac } from "node:crypto";
import type { RecordedEvent } from "../../domain/events.js";
import type { ReviewMessage } from "../message.js";

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = "X-Writ-Signature";

/**
 * The JSON body POSTed for one event: the event exactly as `GET /v1/events`
 * shows it, plus a summary of its request (masked fields without values).
 */
export function webhookPayload(event: RecordedEvent, message: ReviewMessage | undefined) {
  return {
    id: event.id,
    type: event.type,
    request_id: event.requestId,
    actor: { kind: event.actor.kind, id: event.actor.id },
    time: new Date(event.time).toISOString(),
    data: event.data,
    ...(message !== undefined
      ? {
          request: {
            status: message.status,
            agent: message.agent,
            owner: message.owner,
            ...(message.onBehalfOf !== undefined ? { on_behalf_of: message.onBehalfOf } : {}),
            action: message.action,
            resource: message.resource,
            credential_type: message.credentialType,
            ...(message.audience !== undefined ? { audience: message.audience } : {}),
            ...(message.reason !== undefined ? { reason: message.reason } : {}),
            ...(message.ticket !== undefined ? { ticket: message.ticket.id } : {}),
            context: Object.fromEntries(
              message.context.map((c) => [c.name, c.masked ? "•••" : (c.value ?? "")]),
            ),
            // Fields past the limit are counted, so a receiver knows the context is cut.
            ...(message.contextOmitted > 0 ? { context_omitted: message.contextOmitted } : {}),
            masked_fields: [...message.masked],
            policies: [...message.policies],
            approvals: message.requirements.map((r) => ({
              groups: [...r.groups],
              quorum: r.quorum,
              approved: r.approvals,
            })),
            expires_at: new Date(message.expiresAt).toISOString(),
            ...(message.escalation !== undefined
              ? {
                  escalated_at: new Date(message.escalation.at).toISOString(),
                  escalated_to: [...message.escalation.groups],
                }
              : {}),
          },
        }
      : {}),
  };
}

/**
 * The signature header value for `body` sent at `unixSeconds`: HMAC-SHA256
 * under the webhook's secret of `<t>.<body>`, so the timestamp is signed too
 * and a receiver can refuse old (replayed) deliveries.
 */
export function signWebhook(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}
