import { webApi } from "@slack/bolt";
import { approverGroups } from "../../domain/decision.js";
import type { RecordedEvent } from "../../domain/events.js";
import type { AccessRequest } from "../../domain/request.js";
import type { Clock } from "../../ports/clock.js";
import type { Logger } from "../../ports/logger.js";
import type { NotificationState } from "../../ports/notification-state.js";
import type { RequestStore } from "../../ports/store.js";
import {
  type DeliveryChannel,
  DeliveryError,
  NOTIFICATION_SILENT_TYPES,
  type PromptRecorder,
} from "../channel.js";
import {
  buildReviewMessage,
  isTimelineEvent,
  LIMITS,
  type MessageOptions,
  type TimelineEvent,
} from "../message.js";
import {
  approvalMessage,
  type OwnerDecision,
  ownerDecisionMessage,
  type SlackRenderOptions,
} from "./blocks.js";
import type { SlackDirectory } from "./directory.js";
import { afterReviewNotice, decidedNotice, noticeOf } from "./notices.js";

/** Where a group's approval messages go. */
export type SlackRoute = { readonly channel: string } | { readonly dm: true };

export interface SlackNotifierOptions {
  readonly client: InstanceType<typeof webApi.WebClient>;
  readonly store: Pick<RequestStore, "get">;
  readonly state: NotificationState;
  readonly directory: SlackDirectory;
  readonly clock: Clock;
  /** Per approver group. */
  readonly routing: Readonly<Record<string, SlackRoute>>;
  /** For groups without a route; without it, such groups' members get DMs. */
  readonly defaultChannel?: string;
  readonly render: SlackRenderOptions;
  readonly message: MessageOptions;
  /** Where destinations Slack refuses for good are reported (ids and error codes only). */
  readonly logger: Logger;
  /**
   * Records `notification.sent` once every destination of the approval message
   * was reached or refused for good, counting those reached.
   */
  readonly recordPrompt?: PromptRecorder;
}

/** The facts scope for Slack in the notification state. */
export const SLACK_SCOPE = "slack";

/** A posted approval message: where it is, so later events update it in place. */
interface PostedMessage {
  readonly channel: string;
  readonly ts: string;
}

// Platform errors that go away by themselves, or once an operator fixes the
// token: the event waits for them rather than being dropped.
const RETRYABLE_PLATFORM_ERRORS = new Set([
  "ratelimited",
  "rate_limited",
  "internal_error",
  "fatal_error",
  "service_unavailable",
  "request_timeout",
  "team_added_to_org",
  "invalid_auth",
  "not_authed",
  "account_inactive",
  "token_revoked",
  "token_expired",
]);

/** Turns a WebClient failure into a {@link DeliveryError} that says whether to retry. */
export function slackFailure(error: unknown): DeliveryError {
  if (error instanceof webApi.WebAPIRateLimitedError) {
    return new DeliveryError("Slack rate-limited the call", {
      retryable: true,
      retryAfterMs: error.retryAfter * 1000,
    });
  }
  if (error instanceof webApi.WebAPIPlatformError) {
    const code = String(error.data.error);
    return new DeliveryError(`Slack answered ${code.slice(0, 64)}`, {
      retryable: RETRYABLE_PLATFORM_ERRORS.has(code),
    });
  }
  if (error instanceof webApi.WebAPIHTTPError) {
    return new DeliveryError(`Slack answered HTTP ${error.statusCode}`, {
      retryable: error.statusCode >= 500 || error.statusCode === 408,
    });
  }
  if (error instanceof webApi.WebAPIRequestError) {
    return new DeliveryError("Slack could not be reached", { retryable: true });
  }
  if (error instanceof DeliveryError) return error;
  return new DeliveryError((error as Error).message ?? "Slack call failed", { retryable: false });
}

/**
 * The fact that marks a destination Slack refused for good (a channel that no
 * longer exists, a deactivated member's DM, a message deleted by an admin):
 * it is skipped for the rest of the request's life instead of being tried, and
 * failing, on every later event.
 */
const DEAD = "dead:";

/** Where a saved fact says a message was posted, or undefined for a fact that does not say. */
function readPosted(value: string): PostedMessage | undefined {
  try {
    const parsed = JSON.parse(value) as Partial<PostedMessage> | null;
    return typeof parsed?.channel === "string" && typeof parsed.ts === "string"
      ? { channel: parsed.channel, ts: parsed.ts }
      : undefined;
  } catch {
    // A fact this version cannot read is ignored, not fatal.
    return undefined;
  }
}

function parsePosted(facts: Readonly<Record<string, string>>): Map<string, PostedMessage> {
  const posted = new Map<string, PostedMessage>();
  for (const [key, value] of Object.entries(facts)) {
    if (!key.startsWith("msg:") || facts[`${DEAD}${key.slice(4)}`] !== undefined) continue;
    const message = readPosted(value);
    if (message !== undefined) posted.set(key.slice(4), message);
  }
  return posted;
}

/**
 * The after-review notices posted for a request that can still be updated,
 * by fact key. A notice posted before writ kept where it went (its fact
 * holds an event id) cannot be found again, and is left as it is.
 */
function parseAfterReviewNotices(
  facts: Readonly<Record<string, string>>,
): Map<string, PostedMessage> {
  const posted = new Map<string, PostedMessage>();
  for (const [key, value] of Object.entries(facts)) {
    if (!key.startsWith("notice:review_after:") || facts[`${DEAD}${key}`] !== undefined) continue;
    const message = readPosted(value);
    if (message !== undefined) posted.set(key, message);
  }
  return posted;
}

function parseTimeline(facts: Readonly<Record<string, string>>): TimelineEvent[] {
  try {
    const parsed = JSON.parse(facts.timeline ?? "[]") as unknown;
    return Array.isArray(parsed) ? (parsed as TimelineEvent[]) : [];
  } catch {
    return [];
  }
}

/** The decision the event makes, which the agent's owner hears about, if it makes one. */
function decisionOf(event: RecordedEvent): OwnerDecision | undefined {
  if (event.type === "request.approved") return "approved";
  if (event.type === "request.denied") {
    return event.data.by === "policy" ? "denied_by_policy" : "denied";
  }
  if (event.type === "request.expired" && event.data.previous_status === "pending") {
    return "expired";
  }
  return undefined;
}

/**
 * The Slack calls of one delivery, each to one destination. A destination that
 * fails for good is logged, remembered as dead and skipped, and the others go
 * on; a failure worth retrying is kept for {@link Fanout.finish}, which throws
 * it once every destination had its turn, so the worker tries the event again
 * (skipping what was reached). A rate limit ends the turn at once: Slack asked
 * to wait, and the calls after it would only be refused the same way.
 */
interface Fanout {
  /** The work's result, or undefined when Slack refused it (or an earlier call was rate limited). */
  reach<T>(destination: string, work: () => Promise<T>): Promise<T | undefined>;
  /** Throws the failure worth retrying, if any. */
  finish(): void;
}

/**
 * Delivers events to Slack: the approval message when a request needs
 * approval (to the group's channel, or as DMs to its members), `chat.update`
 * of every posted copy for each later event, and a DM to the agent's owner
 * once the request is decided. Posted message ids are kept in the
 * notification state, so any replica updates what another posted.
 */
export function createSlackNotifier(options: SlackNotifierOptions): DeliveryChannel {
  const { client, store, state, directory, clock, logger } = options;

  function fanout(requestId: string, signal: AbortSignal): Fanout {
    let retry: DeliveryError | undefined;
    return {
      async reach(destination, work) {
        if (retry?.retryAfterMs !== undefined) return undefined;
        // This replica lost the worker's lease: another one delivers the event now.
        signal.throwIfAborted();
        try {
          return await work();
        } catch (error) {
          const failure = slackFailure(error);
          const fields = { request_id: requestId, destination, error: failure.message };
          if (failure.retryable) {
            logger.warn("slack destination failed; the event will be retried", fields);
            retry ??= failure;
            if (failure.retryAfterMs !== undefined) retry = failure;
            return undefined;
          }
          logger.warn("slack refused a destination for good; skipping it", fields);
          await state.saveFacts(SLACK_SCOPE, requestId, {
            [`${DEAD}${destination}`]: failure.message.slice(0, 100),
          });
          return undefined;
        }
      },
      finish() {
        if (retry !== undefined) throw retry;
      },
    };
  }

  /**
   * Every place the approval message goes for `groups` (the approver groups,
   * or the escalation groups), keyed so a retry, or an escalation to a place
   * already prompted, skips those done.
   */
  function destinations(
    request: AccessRequest,
    groups: readonly string[],
    audience: {
      /** People to leave out besides the agent, its owner and its on_behalf_of person. */
      readonly alsoExcluded?: readonly string[];
      /** A heads-up, which asks nothing: the on_behalf_of person is told too. */
      readonly headsUp?: boolean;
    } = {},
  ): Map<string, string> {
    const { alsoExcluded = [], headsUp = false } = audience;
    const out = new Map<string, string>();
    // Rule 2 reaches notifications too: those who may not approve are not asked to,
    // on any Slack account writ links to them (person ids compared as samePerson).
    // A heads-up asks nothing of anyone, and the agent chooses its on_behalf_of:
    // were that person left out of it, an agent could pick which member of a
    // @notify group never hears of what it was allowed.
    const excluded = new Set(
      [request.agentId, request.owner, headsUp ? undefined : request.onBehalfOf, ...alsoExcluded]
        .filter((id): id is string => id !== undefined)
        .flatMap((id) => directory.slackUsersOf(id)),
    );
    for (const group of groups) {
      const route =
        options.routing[group] ??
        (options.defaultChannel !== undefined ? { channel: options.defaultChannel } : { dm: true });
      if ("channel" in route) {
        out.set(`c:${route.channel}`, route.channel);
      } else {
        for (const member of directory.members(group)) {
          if (!excluded.has(member)) out.set(`u:${member}`, member);
        }
      }
    }
    return out;
  }

  /**
   * Posts the approval message, with `timeline` as the copies already posted
   * show it, to each of `targets` not prompted (or given up on) already,
   * saving each copy as it is posted, so that a failure after that point
   * never posts it twice and later events update it. Returns the copies
   * posted before, with those this call posted, and the keys it posted.
   */
  async function postCopies(
    request: AccessRequest,
    targets: ReadonlyMap<string, string>,
    facts: Readonly<Record<string, string>>,
    timeline: readonly TimelineEvent[],
    signal: AbortSignal,
  ) {
    const rendered = approvalMessage(
      buildReviewMessage(request, timeline, clock.now(), options.message),
      options.render,
    );
    const posted = parsePosted(facts);
    const fresh = new Set<string>();
    const calls = fanout(request.id, signal);
    for (const [key, channel] of targets) {
      if (posted.has(key) || facts[`${DEAD}${key}`] !== undefined) continue;
      const result = await calls.reach(key, async () => {
        const answer = await client.chat.postMessage({
          channel,
          text: rendered.text,
          blocks: rendered.blocks,
        });
        if (typeof answer.channel !== "string" || typeof answer.ts !== "string") {
          throw new DeliveryError("Slack did not return the message id", { retryable: false });
        }
        return { channel: answer.channel, ts: answer.ts };
      });
      if (result === undefined) continue;
      posted.set(key, result);
      fresh.add(key);
      await state.saveFacts(SLACK_SCOPE, request.id, { [`msg:${key}`]: JSON.stringify(result) });
    }
    calls.finish();
    return { posted, fresh };
  }

  async function postApproval(
    request: AccessRequest,
    facts: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ) {
    const targets = destinations(request, approverGroups(request.decision));
    const { posted } = await postCopies(request, targets, facts, parseTimeline(facts), signal);
    // Once every destination was reached or refused for good, so the count is
    // final; also when a retry posted nothing new, as the record may be what failed.
    const reached = [...targets.keys()].filter((key) => posted.has(key));
    if (reached.length === 0) {
      logger.error("the slack approval message reached no destination", {
        request_id: request.id,
        destinations: targets.size,
      });
      return;
    }
    if (options.recordPrompt === undefined) return;
    for (const [prefix, target] of [
      ["c:", "channel"],
      ["u:", "dm"],
    ] as const) {
      const count = reached.filter((k) => k.startsWith(prefix)).length;
      if (count === 0) continue;
      signal.throwIfAborted();
      await options.recordPrompt(request.id, { target, destinations: count });
    }
  }

  /**
   * Posts the approval message, which now says it was escalated and how long
   * the request has waited, to the escalation groups' destinations that were
   * not prompted already. Escalation tells more people; whether their
   * approval counts is the policy's `@approvers` alone. The new copies carry
   * `timeline` (the escalation on it) as the others show it once updated, and
   * are not updated for this event. Returns the keys of the copies this call
   * posted.
   */
  async function postEscalation(
    request: AccessRequest,
    facts: Readonly<Record<string, string>>,
    timeline: readonly TimelineEvent[],
    signal: AbortSignal,
  ): Promise<Set<string>> {
    const groups = request.decision.escalation?.groups ?? [];
    // Nor is anyone who has approved already: they have nothing left to give.
    const approvers = request.reviews.map((review) => review.reviewerId);
    const targets = destinations(request, groups, { alsoExcluded: approvers });
    const { posted, fresh } = await postCopies(request, targets, facts, timeline, signal);
    // Said as loudly as for the approvers: the copies now read "Escalated to
    // ...", and an escalation group nobody in Slack belongs to (a misspelt
    // group, no route and no default channel) would otherwise be told nothing
    // while everyone believes it was.
    if (![...targets.keys()].some((key) => posted.has(key))) {
      logger.error("the slack escalation reached no destination", {
        request_id: request.id,
        destinations: targets.size,
      });
    }
    return fresh;
  }

  /**
   * Posts the heads-up or after-review notice the event brings (see
   * `noticeOf`) to each destination of its groups not reached already. The
   * same routes as approval prompts, and rule 2 the same way: the agent's
   * owner gets no DM about its own request, nor does the person it acts for
   * about a review they may not record; a heads-up does reach that person.
   */
  async function postNotice(request: AccessRequest, event: RecordedEvent, signal: AbortSignal) {
    const notice = noticeOf(request, event);
    if (notice === undefined) return;
    const facts = await state.facts(SLACK_SCOPE, request.id);
    const message = buildReviewMessage(request, [], clock.now(), options.message);
    const rendered =
      notice.kind === "decided"
        ? decidedNotice(
            message,
            event.type === "request.approved" ? "approved" : "denied",
            event.data.by === "policy",
            options.render,
          )
        : afterReviewNotice(message, options.render);
    const calls = fanout(request.id, signal);
    // One heads-up per outcome: a request allowed at once and then denied by the
    // policies in force at collection tells its groups both times.
    const kind = notice.kind === "decided" ? event.type : notice.kind;
    const targets = destinations(request, notice.groups, { headsUp: notice.kind === "decided" });
    for (const [key, channel] of targets) {
      const factKey = `notice:${kind}:${key}`;
      if (facts[factKey] !== undefined || facts[`${DEAD}${factKey}`] !== undefined) continue;
      const sent = await calls.reach(factKey, () =>
        client.chat.postMessage({ channel, text: rendered.text, blocks: rendered.blocks }),
      );
      if (sent === undefined) continue;
      // Where it went, so the after-review notice can show the review once recorded.
      const where =
        typeof sent.channel === "string" && typeof sent.ts === "string"
          ? JSON.stringify({ channel: sent.channel, ts: sent.ts })
          : event.id;
      await state.saveFacts(SLACK_SCOPE, request.id, { [factKey]: where });
    }
    calls.finish();
  }

  /**
   * Updates each after-review notice in place once the review is recorded, so
   * the group sees it was done, by whom, how and why, and a concern stands
   * out. Drawn from the request as it stands, so a redelivered event renders
   * the same message again; a notice never posted has nothing to update.
   */
  async function updateAfterReviewNotices(request: AccessRequest, signal: AbortSignal) {
    if (request.reviewedAfter === undefined) return;
    const notices = parseAfterReviewNotices(await state.facts(SLACK_SCOPE, request.id));
    if (notices.size === 0) return;
    const rendered = afterReviewNotice(
      buildReviewMessage(request, [], clock.now(), options.message),
      options.render,
    );
    const calls = fanout(request.id, signal);
    for (const [key, notice] of notices) {
      await calls.reach(key, () =>
        client.chat.update({
          channel: notice.channel,
          ts: notice.ts,
          text: rendered.text,
          blocks: rendered.blocks,
        }),
      );
    }
    calls.finish();
  }

  return {
    name: SLACK_SCOPE,
    wants: (event) => !NOTIFICATION_SILENT_TYPES.has(event.type),
    async deliver(event, signal) {
      const request = await store.get(event.requestId);
      if (request === undefined) return;
      await postNotice(request, event, signal);
      if (event.type === "request.reviewed_after") await updateAfterReviewNotices(request, signal);
      if (request.decision.effect !== "approve") return;
      let facts = await state.facts(SLACK_SCOPE, request.id);
      if (event.type === "request.decided") {
        await postApproval(request, facts, signal);
        return;
      }
      let timeline = parseTimeline(facts);
      const addsToTimeline = isTimelineEvent(event) && !timeline.some((t) => t.id === event.id);
      if (addsToTimeline) {
        const entry: TimelineEvent = {
          id: event.id,
          type: event.type,
          time: event.time,
          actor: event.actor,
          data: event.data,
        };
        timeline = [...timeline, entry].slice(-LIMITS.timeline);
      }
      // A request decided before its escalation was delivered prompts nobody new.
      let fresh = new Set<string>();
      if (
        event.type === "request.escalated" &&
        request.status === "pending" &&
        clock.now() < request.expiresAt
      ) {
        fresh = await postEscalation(request, facts, timeline, signal);
        if (fresh.size > 0) facts = await state.facts(SLACK_SCOPE, request.id);
      }
      // A request Slack never prompted for (on a worker's first start, events
      // older than its window are skipped) gets no updates and no owner DM.
      const prompted = Object.keys(facts).some(
        (k) => k.startsWith("msg:") || (k.startsWith(DEAD) && !k.startsWith(`${DEAD}notice:`)),
      );
      if (!prompted) return;
      const posted = parsePosted(facts);
      if (addsToTimeline) {
        await state.saveFacts(SLACK_SCOPE, request.id, { timeline: JSON.stringify(timeline) });
      }
      const message = buildReviewMessage(request, timeline, clock.now(), options.message);
      const rendered = approvalMessage(message, options.render);
      const calls = fanout(request.id, signal);
      for (const [key, copy] of posted) {
        // Just posted with the escalation on it: nothing to update.
        if (fresh.has(key)) continue;
        await calls.reach(key, () =>
          client.chat.update({
            channel: copy.channel,
            ts: copy.ts,
            text: rendered.text,
            blocks: rendered.blocks,
          }),
        );
      }
      // Whatever became of the copies: the owner hears of the decision even when
      // none could be updated.
      const ownerSlackId = directory.slackUserOf(request.owner);
      const dmKey = `owner:${event.type}`;
      const decision = decisionOf(event);
      if (
        decision !== undefined &&
        ownerSlackId !== undefined &&
        facts[dmKey] === undefined &&
        facts[`${DEAD}${dmKey}`] === undefined
      ) {
        const dm = ownerDecisionMessage(message, decision, options.render);
        const sent = await calls.reach(dmKey, () =>
          client.chat.postMessage({ channel: ownerSlackId, ...dm }),
        );
        if (sent !== undefined) {
          await state.saveFacts(SLACK_SCOPE, request.id, { [dmKey]: event.id });
        }
      }
      calls.finish();
    },
  };
}
