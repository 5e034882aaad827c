import type { RecordedEvent } from "../domain/events.js";

/** One step of a request's story, ready to show. */
export interface TimelineStep {
  readonly id: string;
  readonly time: string;
  readonly type: string;
  /** What happened, in words. */
  readonly title: string;
  /** Who did it: `kind:id`. */
  readonly actor: string;
  /** Facts worth a line each (label, value); all come from the event's data. */
  readonly facts: readonly (readonly [string, string])[];
  readonly tone: "neutral" | "good" | "bad" | "warn";
}

const str = (v: unknown): string | undefined =>
  typeof v === "string"
    ? v
    : typeof v === "number" || typeof v === "boolean"
      ? String(v)
      : undefined;

const list = (v: unknown): string | undefined =>
  Array.isArray(v) && v.length > 0 ? v.map((x) => String(x)).join(", ") : undefined;

function facts(pairs: readonly (readonly [string, string | undefined])[]) {
  return pairs.filter((p): p is readonly [string, string] => p[1] !== undefined && p[1] !== "");
}

/** The event as a step: what the security team asks of each credential, in order. */
export function timelineStep(event: RecordedEvent): TimelineStep {
  const d = event.data as Record<string, unknown>;
  const base = {
    id: event.id,
    time: new Date(event.time).toISOString(),
    type: event.type,
    actor: `${event.actor.kind}:${event.actor.id}`,
  };
  switch (event.type) {
    case "request.created":
      return {
        ...base,
        title: "Requested",
        tone: "neutral",
        facts: facts([
          ["agent", str(d.agent)],
          ["owner", str(d.owner)],
          ["on behalf of", str(d.on_behalf_of)],
          ["action", str(d.action)],
          ["resource", str(d.resource)],
          ["reason", str(d.reason)],
          ["ticket", str(d.ticket)],
          ["ttl (s)", str(d.ttl_seconds)],
        ]),
      };
    case "request.decided":
      return {
        ...base,
        title: `Decided by policy: ${str(d.effect) ?? "?"}`,
        tone: d.effect === "deny" ? "bad" : d.effect === "allow" ? "good" : "neutral",
        facts: facts([
          ["policies", list(d.policies) ?? "none"],
          [
            "needs",
            Array.isArray(d.requirements)
              ? d.requirements
                  .map((r) => {
                    const q = r as { groups?: unknown; quorum?: unknown };
                    return `${str(q.quorum) ?? "?"} of ${list(q.groups) ?? "?"}`;
                  })
                  .join(" and ")
              : undefined,
          ],
        ]),
      };
    case "notification.sent":
      return {
        ...base,
        title: `Notified reviewers via ${str(d.channel) ?? "?"}`,
        tone: "neutral",
        facts: facts([
          [
            "sent to",
            d.target === "dm"
              ? "direct messages"
              : d.target === "endpoint"
                ? "webhook endpoint"
                : str(d.target),
          ],
          ["destinations", str(d.destinations)],
          ["webhook", str(d.webhook)],
        ]),
      };
    case "approval.form_opened":
      return {
        ...base,
        title: `${str(d.reviewer) ?? event.actor.id} opened the ${str(d.form) ?? "review"} form`,
        tone: "neutral",
        facts: facts([
          ["channel", str(d.channel)],
          ["channel user", str(d.channel_user_id)],
        ]),
      };
    case "approval.refused":
      return {
        ...base,
        title: `Refused to ${str(d.attempted) ?? "act"}: ${str(d.code) ?? "?"}`,
        tone: "warn",
        facts: facts([
          ["reviewer", str(d.reviewer)],
          ["channel", str(d.channel)],
          ["channel user", str(d.channel_user_id)],
        ]),
      };
    case "approval.granted":
      return {
        ...base,
        title: `Approved by ${str(d.reviewer) ?? event.actor.id}`,
        tone: "good",
        facts: facts([
          ["groups", list(d.groups)],
          ["channel", str(d.channel)],
          ["comment", str(d.comment)],
          ["approvals so far", str(d.approvals)],
        ]),
      };
    case "approval.denied":
      return {
        ...base,
        title: `Denied by ${str(d.reviewer) ?? event.actor.id}`,
        tone: "bad",
        facts: facts([
          ["groups", list(d.groups)],
          ["channel", str(d.channel)],
          ["reason", str(d.reason)],
        ]),
      };
    case "request.approved":
      return {
        ...base,
        title: d.by === "policy" ? "Approved by policy" : "Approved",
        tone: "good",
        facts: facts([["approvers", list(d.approvers)]]),
      };
    case "request.denied":
      return {
        ...base,
        title:
          d.by !== "policy"
            ? "Denied"
            : d.previous_status !== undefined
              ? "Denied by the policies in force at collection"
              : "Denied by policy",
        tone: "bad",
        facts: facts([
          ["reviewer", str(d.reviewer)],
          ["reason", str(d.reason)],
          ["policies", list(d.policies)],
          ["was", str(d.previous_status)],
          ["now requires", str(d.requires)],
        ]),
      };
    case "credential.issued":
      return {
        ...base,
        title: "Credential issued",
        tone: "good",
        facts: facts([
          ["type", str(d.credential_type)],
          ["credential id", str(d.credential_id)],
          ["expires", str(d.expires_at)],
          ["audience", str(d.audience)],
        ]),
      };
    case "token.used":
      return {
        ...base,
        title: `Used by ${str(d.resource_server) ?? event.actor.id}`,
        tone: "good",
        facts: facts([["credential id", str(d.credential_id)]]),
      };
    case "token.replay_blocked":
      return {
        ...base,
        title: `Replay blocked (${str(d.resource_server) ?? event.actor.id})`,
        tone: "warn",
        facts: facts([["credential id", str(d.credential_id)]]),
      };
    case "token.rejected":
      return {
        ...base,
        title: `Ended token presented (${str(d.resource_server) ?? event.actor.id})`,
        tone: "warn",
        facts: facts([
          ["credential id", str(d.credential_id)],
          ["credential was", str(d.status)],
        ]),
      };
    case "request.expired":
    case "credential.expired":
      return {
        ...base,
        title: event.type === "request.expired" ? "Request expired" : "Credential expired unused",
        tone: "warn",
        facts: facts([
          ["was", str(d.previous_status)],
          ["deadline", str(d.deadline)],
        ]),
      };
    case "request.cancelled":
      return { ...base, title: "Cancelled by the agent", tone: "warn", facts: [] };
    case "request.escalated":
      return {
        ...base,
        title: `Escalated to ${list(d.groups) ?? "?"}`,
        tone: "warn",
        facts: facts([
          ["waited (s)", str(d.waited_seconds)],
          ["escalate after (s)", str(d.after_seconds)],
          ["approvals so far", str(d.approvals)],
        ]),
      };
    case "request.reviewed_after":
      return {
        ...base,
        title:
          d.verdict === "concern"
            ? `Concern raised after the fact by ${str(d.reviewer) ?? "?"}`
            : `Reviewed after the fact by ${str(d.reviewer) ?? "?"}: no concern`,
        tone: d.verdict === "concern" ? "bad" : "good",
        facts: facts([
          ["note", str(d.note)],
          ["groups", list(d.groups)],
          ["status then", str(d.status)],
          ["channel", str(d.channel)],
        ]),
      };
    case "credential.revoked":
      return {
        ...base,
        title: `Revoked by ${event.actor.id}`,
        tone: "bad",
        facts: facts([["reason", str(d.reason)]]),
      };
    default:
      // Types added later still show, with their data's plain values.
      return {
        ...base,
        title: event.type,
        tone: "neutral",
        facts: facts(Object.entries(d).map(([k, v]) => [k, str(v) ?? list(v)] as const)),
      };
  }
}
