import { actorOf, type Reviewer } from "../domain/principal.js";
import type { ReviewChannel } from "../domain/request.js";
import type { BrokerDeps } from "./deps.js";
import { appendEvents, loadSettled } from "./record.js";

/** A reviewer opened a review form in a chat channel, e.g. Slack's deny modal. */
export interface FormOpening {
  readonly requestId: string;
  readonly reviewer: Reviewer;
  readonly channel: ReviewChannel;
  /** The account in the channel (a Slack user id). */
  readonly channelUserId: string;
  /** Which form: today only the deny form, which asks for a reason. */
  readonly form: "deny";
}

/**
 * Records `approval.form_opened`. Opening a form decides nothing (the review is
 * recorded when the form is submitted, or never if it is dismissed), but it is
 * a click by a person, and every click is on the record with the account that
 * made it.
 */
export async function recordFormOpened(deps: BrokerDeps, opening: FormOpening): Promise<void> {
  const request = await loadSettled(deps, opening.requestId);
  await appendEvents(deps, request, [
    {
      type: "approval.form_opened",
      requestId: request.id,
      actor: actorOf(opening.reviewer),
      time: deps.clock.now(),
      data: {
        form: opening.form,
        reviewer: opening.reviewer.id,
        channel: opening.channel,
        channel_user_id: opening.channelUserId,
      },
    },
  ]);
}
