import type { JsonValue } from "../domain/json.js";
import type { Reviewer } from "../domain/principal.js";
import type { ReviewChannel } from "../domain/request.js";
import { revealSensitive } from "../domain/reveal.js";
import type { BrokerDeps } from "./deps.js";
import { transact } from "./record.js";

/**
 * An eligible reviewer reveals a request's masked context fields. The values are
 * returned only after `sensitive.revealed` is committed and in the audit log, so
 * no one sees them without a record that they did.
 */
export async function revealMasked(
  deps: BrokerDeps,
  reviewer: Reviewer,
  id: string,
  channel: ReviewChannel,
  channelUserId?: string,
): Promise<Readonly<Record<string, JsonValue>>> {
  let fields: Readonly<Record<string, JsonValue>> = {};
  await transact(deps, id, (request, now) => {
    const reveal = revealSensitive({
      request,
      reviewer,
      channel,
      ...(channelUserId !== undefined ? { channelUserId } : {}),
      now,
    });
    fields = reveal.fields;
    return reveal;
  });
  return fields;
}
