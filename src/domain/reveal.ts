import { WritError } from "./errors.js";
import type { JsonValue } from "./json.js";
import { actorOf, type Reviewer } from "./principal.js";
import type { AccessRequest, ReviewChannel, Transition } from "./request.js";
import { assertEligibleReviewer } from "./review.js";

/** The context fields of `request` that its policy masks, in the policy's order. */
export function maskedFields(request: AccessRequest): string[] {
  return request.decision.sensitiveFields.filter((field) => field in request.context);
}

/**
 * A reviewer asks to see the context fields the policy masks. Only someone who
 * may review the request now (pending, before its deadline, not its agent, owner
 * or `on_behalf_of` person, in a group the policy names) may see them. The reveal
 * changes no state (same version) and is recorded as `sensitive.revealed`, naming
 * the fields but never their values; the caller shows the values only once that
 * event is committed.
 */
export function revealSensitive(args: {
  request: AccessRequest;
  reviewer: Reviewer;
  channel: ReviewChannel;
  channelUserId?: string;
  now: number;
}): Transition & { fields: Readonly<Record<string, JsonValue>> } {
  const { request, reviewer, channel, channelUserId, now } = args;
  const groups = assertEligibleReviewer(request, reviewer, now);
  const names = maskedFields(request);
  if (names.length === 0) throw new WritError("not_found", "This request has no masked fields.");
  const fields: Record<string, JsonValue> = {};
  for (const name of names) fields[name] = request.context[name] as JsonValue;
  return {
    request,
    fields,
    events: [
      {
        type: "sensitive.revealed",
        requestId: request.id,
        actor: actorOf(reviewer),
        time: now,
        data: {
          reviewer: reviewer.id,
          groups,
          channel,
          ...(channelUserId ? { channel_user_id: channelUserId } : {}),
          fields: names,
        },
      },
    ],
  };
}
