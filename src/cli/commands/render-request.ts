import type { WritCredential, WritRequest } from "../../sdk/client.js";

/**
 * Replaces control characters. Reasons, comments and resources come from other
 * people; they must not be able to move the cursor or rewrite a reviewer's screen.
 */
export function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, "\uFFFD");
}

/** `2m 5s`, `1h 3m`, `40s`: a duration for people. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `${hours}h` : `${hours}h ${minutes % 60}m`;
}

/** `2026-01-15T09:15:00.000Z (in 14m 3s)`, or `(… ago)` once past. */
export function formatDeadline(iso: string, now = Date.now()): string {
  const delta = Date.parse(iso) - now;
  if (Number.isNaN(delta)) return iso;
  return delta >= 0
    ? `${iso} (in ${formatDuration(delta)})`
    : `${iso} (${formatDuration(-delta)} ago)`;
}

/** Approvals the request needs in all, over every requirement. */
export function requiredApprovals(request: WritRequest): number {
  return request.decision.requirements.reduce((sum, r) => sum + r.quorum, 0);
}

/** `1 of 2` approvals so far, for a pending request. */
export function approvalProgress(request: WritRequest): string {
  const required = requiredApprovals(request);
  return `${required - request.pending_approvals} of ${required}`;
}

/** `2 from data-owners and 1 from security or sre`: who must approve. */
export function describeRequirements(request: WritRequest): string {
  return request.decision.requirements
    .map((r) => `${r.quorum} from ${r.groups.join(" or ")}`)
    .join(" and ");
}

function reviewLine(review: WritRequest["reviews"][number]): string {
  const verb = review.verdict === "approve" ? "approved" : "denied";
  const comment = review.comment === undefined ? "" : `: ${review.comment}`;
  return `${review.reviewer} ${verb} via ${review.channel}${comment}`;
}

const safe = (lines: string[]) => lines.map(printable);

/** An indented `label:  value` line; labels line up. An empty label continues the line above. */
function field(label: string, value: string): string {
  return `  ${(label === "" ? "" : `${label}:`).padEnd(12)}${value}`;
}

/** Who can never count toward the approval: the owner and whoever the agent acts for. */
function excludedReviewers(request: WritRequest): string {
  const owner = `${request.owner} (owner)`;
  return request.on_behalf_of === undefined
    ? owner
    : `${owner} or ${request.on_behalf_of} (on whose behalf it acts)`;
}

/**
 * What `writ request` prints about a new request: its state and, while it is
 * pending, who must approve it and the commands to use next.
 */
export function describeNewRequest(request: WritRequest): string[] {
  const { id } = request;
  if (request.status === "pending") {
    return safe([
      `${id}  pending`,
      field(
        "needs",
        `${describeRequirements(request)}, distinct people, not ${excludedReviewers(request)}`,
      ),
      field("approve by", formatDeadline(request.expires_at)),
      field("reviewers", `writ approve ${id}`),
      field("", `writ deny ${id} --reason <text>`),
      field("then", `writ credential ${id}`),
    ]);
  }
  if (request.status === "approved") {
    return safe([
      `${id}  approved at once (${request.decision.policies.join(", ") || "policy"})`,
      field("collect", `writ credential ${id}`),
      field("collect by", formatDeadline(request.expires_at)),
    ]);
  }
  return describeRequest(request);
}

/** The full human view of a request, as `writ status` prints it. */
export function describeRequest(request: WritRequest): string[] {
  const progress = request.status === "pending" ? ` (${approvalProgress(request)} approvals)` : "";
  const actsFor = request.on_behalf_of === undefined ? "" : `, for ${request.on_behalf_of}`;
  const audience = request.audience === undefined ? "" : ` for ${request.audience}`;
  const lines = [
    `${request.id}  ${request.status}${progress}`,
    field("agent", `${request.agent} (owner ${request.owner}${actsFor})`),
    field("action", `${request.action} on ${request.resource}`),
    field(
      "credential",
      `${request.credential_type}${audience}, lives ${formatDuration(request.ttl_seconds * 1000)}`,
    ),
  ];
  if (request.reason !== undefined) lines.push(field("reason", request.reason));
  if (request.ticket !== undefined) lines.push(field("ticket", request.ticket));
  if (request.status === "pending") lines.push(field("needs", describeRequirements(request)));
  for (const review of request.reviews) lines.push(field("review", reviewLine(review)));
  if (request.credential !== undefined) {
    const { type, id, expires_at } = request.credential;
    lines.push(field("issued", `${type} ${id}, expires ${formatDeadline(expires_at)}`));
  }
  if (request.status === "pending") {
    lines.push(field("approve by", formatDeadline(request.expires_at)));
  } else if (request.status === "approved") {
    lines.push(field("collect by", formatDeadline(request.expires_at)));
  }
  return safe(lines);
}

/** One pending request in `writ pending`'s list. */
export function describePendingItem(request: WritRequest): string[] {
  const lines = [
    `${request.id}  ${request.action}  ${request.resource}`,
    `  agent ${request.agent} (owner ${request.owner}) · approvals ${approvalProgress(request)} (${describeRequirements(request)}) · expires ${formatDeadline(request.expires_at)}`,
  ];
  if (request.reason !== undefined || request.ticket !== undefined) {
    const ticket = request.ticket === undefined ? "" : ` [${request.ticket}]`;
    lines.push(`  reason: ${request.reason ?? "(none)"}${ticket}`);
  }
  if (request.masked_fields.length > 0) {
    lines.push(`  masked: ${request.masked_fields.join(", ")}`);
  }
  return safe(lines);
}

/**
 * The credential as a shell reads it: a JWT alone, so `TOKEN=$(…)` works; an
 * AWS session as `export` lines, so `eval "$(…)"` works.
 */
export function credentialForShell(credential: WritCredential): string {
  if (credential.type === "jwt") return `${credential.token}\n`;
  return [
    `export AWS_ACCESS_KEY_ID='${credential.access_key_id}'`,
    `export AWS_SECRET_ACCESS_KEY='${credential.secret_access_key}'`,
    `export AWS_SESSION_TOKEN='${credential.session_token}'`,
    "",
  ].join("\n");
}

/** What goes to stderr next to a credential: what it is and how long it lives. */
export function describeCredential(credential: WritCredential): string {
  const what = credential.type === "jwt" ? "JWT, single use" : "AWS session";
  return `${what}, expires ${formatDeadline(credential.expires_at)}`;
}
