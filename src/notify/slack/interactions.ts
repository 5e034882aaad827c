import { createHash } from "node:crypto";
import { App, LogLevel, type Receiver, type types as SlackTypes, webApi } from "@slack/bolt";
import { z } from "zod";
import { isWritError, WritError } from "../../domain/errors.js";
import { actorOf, type Reviewer, SYSTEM_ACTOR } from "../../domain/principal.js";
import { assertEligibleReviewer } from "../../domain/review.js";
import { PRINTABLE } from "../../domain/text.js";
import type { Logger } from "../../ports/logger.js";
import type { NotificationState } from "../../ports/notification-state.js";
import type { BrokerDeps } from "../../service/deps.js";
import { loadSettled } from "../../service/record.js";
import { recordFormOpened } from "../../service/record-form-opened.js";
import { recordRefusal } from "../../service/refuse-review.js";
import { revealMasked } from "../../service/reveal-sensitive.js";
import { approve, deny } from "../../service/review-request.js";
import { buildReviewMessage, type MessageOptions } from "../message.js";
import { denyModal, escapeMrkdwn, revealMessage, SLACK_IDS } from "./blocks.js";
import type { SlackDirectory } from "./directory.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

export interface SlackAppOptions {
  readonly deps: BrokerDeps;
  readonly botToken: string;
  readonly directory: SlackDirectory;
  readonly state: NotificationState;
  readonly logger: Logger;
  /** Web API base URL (ends with `/`). */
  readonly apiUrl?: string;
  /** Also map users by their confirmed Slack email (weaker; see docs/slack.md). */
  readonly matchByEmail: boolean;
  /**
   * Accept interactions from this workspace only: the payload's team and the
   * clicking user's home team must both be it. Required with `matchByEmail`.
   */
  readonly teamId?: string;
  readonly message: MessageOptions;
  /** The HTTP receiver; absent with Socket Mode. */
  readonly receiver?: Receiver;
  /** Socket Mode's app-level token. */
  readonly appToken?: string;
}

/** How long a trigger id is remembered: Slack never reuses one, and retries come within minutes. */
const TRIGGER_MEMORY_MS = 15 * 60_000;

/** Codes the domain uses to refuse a review; each answered with its own message. */
const REFUSALS = new Set([
  "self_approval_forbidden",
  "not_an_approver",
  "already_reviewed",
  "request_not_pending",
]);

/** The domain's answer to self-review, for a Slack account writ links to the owner. */
const OWN_ACCOUNT_TEXT =
  "You own this agent or it acts on your behalf, so you cannot review its request.";
const UNKNOWN_USER_TEXT =
  "Your Slack account is not linked to a writ reviewer, so you cannot act on this request. Ask a writ admin to add your Slack user id to your reviewer entry.";
const FAILED_TEXT =
  "writ could not record this now. Nothing changed; try again, or use `writ approve` / `writ deny`.";
const LOOKUP_FAILED_TEXT =
  "writ could not look up your Slack account with Slack just now. Nothing changed; try again in a moment, or use `writ approve` / `writ deny`.";

/** `users.info` errors that mean the user does not exist (for this app), rather than a failure. */
const NO_SUCH_USER = new Set(["user_not_found", "user_not_visible"]);

const REQUEST_ID = z.string().regex(/^req_[A-Za-z0-9_-]{22}$/);
const SLACK_ID = z.string().regex(/^[A-Z0-9]{2,24}$/);

const Click = z.object({
  user: z.object({ id: SLACK_ID }),
  team: z.object({ id: SLACK_ID }).nullish(),
  channel: z.object({ id: SLACK_ID }).nullish(),
  trigger_id: z.string().max(256).optional(),
  actions: z.array(z.object({ action_id: z.string(), value: REQUEST_ID })).length(1),
});

const Submission = z.object({
  user: z.object({ id: SLACK_ID }),
  team: z.object({ id: SLACK_ID }).nullish(),
  view: z.object({
    private_metadata: z.string().max(3000),
    state: z.object({
      values: z.record(z.string(), z.record(z.string(), z.object({ value: z.string().nullish() }))),
    }),
  }),
});

const Metadata = z.strictObject({ requestId: REQUEST_ID, channelId: SLACK_ID.optional() });

/** A deny reason from the modal: whitespace collapsed (the input is multi-line), 1–2,000 characters. */
export function normalizeReason(value: string | null | undefined): string | undefined {
  const reason = (value ?? "").replace(/\s+/g, " ").trim();
  if (reason.length === 0 || reason.length > 2000 || !PRINTABLE.test(reason)) return undefined;
  return reason;
}

interface ClickContext {
  readonly slackUserId: string;
  readonly requestId: string;
  readonly channelId: string | undefined;
}

/** Bolt's logger interface over writ's: Bolt's debug output (payload dumps) is dropped. */
function boltLogger(logger: Logger) {
  let level = LogLevel.INFO;
  const text = (msg: unknown[]) =>
    msg
      .map((m) => String(m))
      .join(" ")
      .slice(0, 500);
  return {
    debug() {},
    info: (...msg: unknown[]) => logger.info(`slack: ${text(msg)}`),
    warn: (...msg: unknown[]) => logger.warn(`slack: ${text(msg)}`),
    error: (...msg: unknown[]) => logger.error(`slack: ${text(msg)}`),
    setLevel(next: LogLevel) {
      level = next;
    },
    getLevel: () => level,
    setName() {},
  };
}

/**
 * The Bolt app behind writ's Slack buttons. Every click goes through the same
 * use cases and domain rules as the API (channel "slack"), with the reviewer
 * found only through the directory; a refused click changes nothing, gets an
 * ephemeral answer, and is recorded as `approval.refused` with the Slack user id.
 */
export function createSlackApp(options: SlackAppOptions): App {
  const { deps, directory, state, logger } = options;
  const app = new App({
    ...(options.receiver !== undefined
      ? { receiver: options.receiver }
      : {
          socketMode: true,
          ...(options.appToken !== undefined ? { appToken: options.appToken } : {}),
        }),
    // A fixed authorization: no auth.test at start, so a Slack outage at boot
    // cannot leave the app unable to authorize every later click.
    authorize: async () => ({ botToken: options.botToken }),
    logger: boltLogger(logger),
    convoStore: false,
    clientOptions: {
      ...(options.apiUrl !== undefined ? { slackApiUrl: options.apiUrl } : {}),
      // Interactive answers are useful only now; notifications have their own retries.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: 10_000,
    },
  });

  app.error(async (error) => {
    logger.error("slack listener failed", { error: error.message.slice(0, 300) });
  });

  // One handling per interaction, even when Slack (or Socket Mode) delivers it twice.
  app.use(async (args) => {
    const body = args.body as {
      trigger_id?: unknown;
      team?: { id?: unknown } | null;
      user?: { team_id?: unknown } | null;
    };
    // Another workspace's user clicking in a shared (Slack Connect) channel comes
    // with this workspace's team but their own home team: both must be ours, and
    // a payload that leaves either out says nothing about where the user is from.
    if (
      options.teamId !== undefined &&
      (body.team?.id !== options.teamId || body.user?.team_id !== options.teamId)
    ) {
      logger.warn("slack interaction from another workspace ignored");
      if ("ack" in args && typeof args.ack === "function") await args.ack();
      return;
    }
    if (typeof body.trigger_id === "string") {
      const key = createHash("sha256").update(body.trigger_id).digest("hex");
      if (!(await state.firstSeen(`slack:trigger:${key}`, TRIGGER_MEMORY_MS))) {
        if ("ack" in args && typeof args.ack === "function") await args.ack();
        return;
      }
    }
    await args.next();
  });

  /**
   * The reviewer a Slack user's confirmed email names, if the user may match
   * by email at all; `unavailable` when Slack could not be asked (a rate limit,
   * an outage, a revoked token), which says nothing about who clicked.
   */
  async function reviewerByEmail(
    client: WebClient,
    slackUserId: string,
  ): Promise<string | undefined | "unavailable"> {
    let user: Awaited<ReturnType<WebClient["users"]["info"]>>["user"];
    try {
      ({ user } = await client.users.info({ user: slackUserId }));
    } catch (error) {
      const code =
        error instanceof webApi.WebAPIPlatformError ? String(error.data.error) : undefined;
      // Slack's answer that there is no such user is an answer: that user is unknown.
      if (code !== undefined && NO_SUCH_USER.has(code)) return undefined;
      logger.warn("slack users.info failed", { error: (error as Error).message.slice(0, 200) });
      return "unavailable";
    }
    const eligible =
      user !== undefined &&
      user.deleted !== true &&
      user.is_bot !== true &&
      user.is_restricted !== true &&
      user.is_ultra_restricted !== true &&
      user.is_email_confirmed === true &&
      // Never across workspaces: configuration requires team_id with email matching.
      options.teamId !== undefined &&
      user.team_id === options.teamId;
    const email = user?.profile?.email;
    return eligible && typeof email === "string" ? directory.reviewerForEmail(email) : undefined;
  }

  /**
   * The configured reviewer who clicked, `unknown` for a Slack user who maps to
   * none, or `unavailable` when the email lookup could not reach Slack: then the
   * click is neither decided nor recorded as refused, since writ does not know
   * who made it.
   */
  async function resolveReviewer(
    client: WebClient,
    slackUserId: string,
  ): Promise<Reviewer | "unknown" | "unavailable"> {
    let reviewerId = directory.reviewerFor(slackUserId);
    if (reviewerId === undefined && options.matchByEmail) {
      const found = await reviewerByEmail(client, slackUserId);
      if (found === "unavailable") return found;
      reviewerId = found;
    }
    return (
      (reviewerId === undefined ? undefined : deps.identities.reviewer(reviewerId)) ?? "unknown"
    );
  }

  /**
   * Rule 2 by Slack account: a click from a Slack account writ links to the
   * request's agent, owner or on-behalf-of person is refused, whichever reviewer
   * the account resolves to (another reviewer entry, or a matching email).
   */
  async function assertNotOwnAccount(requestId: string, slackUserId: string) {
    const request = await deps.store.get(requestId);
    if (request === undefined) throw new WritError("not_found", "No such request.");
    const people = [request.agentId, request.owner, request.onBehalfOf].filter(
      (id): id is string => id !== undefined,
    );
    if (people.some((id) => directory.slackUsersOf(id).includes(slackUserId))) {
      throw new WritError("self_approval_forbidden", OWN_ACCOUNT_TEXT);
    }
  }

  async function tell(
    client: WebClient,
    click: Pick<ClickContext, "slackUserId" | "channelId">,
    text: string,
    blocks?: SlackTypes.KnownBlock[],
  ) {
    try {
      if (click.channelId !== undefined) {
        await client.chat.postEphemeral({
          channel: click.channelId,
          user: click.slackUserId,
          text,
          ...(blocks !== undefined ? { blocks } : {}),
        });
      } else {
        await client.chat.postMessage({
          channel: click.slackUserId,
          text,
          ...(blocks !== undefined ? { blocks } : {}),
        });
      }
    } catch (error) {
      logger.warn("slack reply failed", { error: (error as Error).message.slice(0, 200) });
    }
  }

  async function refuse(
    client: WebClient,
    click: ClickContext,
    attempted: "approve" | "deny" | "reveal",
    reviewer: Reviewer | undefined,
    code: WritError["code"] | "unknown_channel_user",
    text: string,
  ) {
    try {
      await recordRefusal(deps, {
        requestId: click.requestId,
        actor:
          reviewer !== undefined ? actorOf(reviewer) : { kind: SYSTEM_ACTOR.kind, id: "slack" },
        channel: "slack",
        channelUserId: click.slackUserId,
        attempted,
        code,
      });
    } catch (error) {
      logger.warn("slack refusal not recorded", {
        request_id: click.requestId,
        error: (error as Error).message.slice(0, 200),
      });
    }
    await tell(client, click, `:no_entry: ${text}`);
  }

  /** Answers a failed action: a domain refusal, a vanished request, or writ being unavailable. */
  async function failed(
    client: WebClient,
    click: ClickContext,
    attempted: "approve" | "deny" | "reveal",
    reviewer: Reviewer,
    error: unknown,
  ) {
    if (isWritError(error) && REFUSALS.has(error.code)) {
      await refuse(client, click, attempted, reviewer, error.code, error.message);
    } else if (isWritError(error) && error.code === "not_found") {
      await tell(client, click, "This request no longer exists in writ.");
    } else {
      logger.warn("slack action failed", {
        request_id: click.requestId,
        attempted,
        error: isWritError(error) ? error.code : (error as Error).name,
      });
      await tell(client, click, FAILED_TEXT);
    }
  }

  function parseClick(body: unknown): ClickContext | undefined {
    const parsed = Click.safeParse(body);
    if (!parsed.success) {
      logger.warn("slack action payload rejected");
      return undefined;
    }
    const { user, channel, actions } = parsed.data;
    return {
      slackUserId: user.id,
      requestId: (actions[0] as { value: string }).value,
      channelId: channel?.id ?? undefined,
    };
  }

  /**
   * What every button shares: acknowledge at once, map the clicking Slack user
   * to a configured reviewer, refuse the accounts of the agent's own people, and
   * answer any refusal ephemerally (recorded as `approval.refused`).
   */
  function onClick(
    actionId: string,
    attempted: "approve" | "deny" | "reveal",
    handle: (
      click: ClickContext,
      reviewer: Reviewer,
      client: WebClient,
      body: unknown,
    ) => Promise<void>,
  ) {
    app.action(actionId, async ({ ack, body, client }) => {
      await ack();
      const click = parseClick(body);
      if (click === undefined) return;
      const reviewer = await resolveReviewer(client, click.slackUserId);
      if (reviewer === "unavailable") {
        await tell(client, click, LOOKUP_FAILED_TEXT);
        return;
      }
      if (reviewer === "unknown") {
        await refuse(
          client,
          click,
          attempted,
          undefined,
          "unknown_channel_user",
          UNKNOWN_USER_TEXT,
        );
        return;
      }
      try {
        await assertNotOwnAccount(click.requestId, click.slackUserId);
        await handle(click, reviewer, client, body);
      } catch (error) {
        await failed(client, click, attempted, reviewer, error);
      }
    });
  }

  onClick(SLACK_IDS.approve, "approve", async (click, reviewer, client) => {
    const { request } = await approve(
      deps,
      reviewer,
      click.requestId,
      undefined,
      "slack",
      click.slackUserId,
    );
    await tell(
      client,
      click,
      request.status === "pending"
        ? `:white_check_mark: You approved \`${request.id}\`; more approvals are needed.`
        : `:white_check_mark: You approved \`${request.id}\`; it is now approved.`,
    );
  });

  onClick(SLACK_IDS.deny, "deny", async (click, reviewer, client, body) => {
    const request = await loadSettled(deps, click.requestId);
    // Checked before the form opens, so nobody types a reason only to be refused.
    // A reviewer who approved may still deny while the request is pending.
    assertEligibleReviewer(request, reviewer, deps.clock.now());
    const triggerId = (body as { trigger_id?: string }).trigger_id;
    if (triggerId === undefined) throw new WritError("bad_request", "No trigger id.");
    const message = buildReviewMessage(request, [], deps.clock.now(), options.message);
    await client.views.open({
      trigger_id: triggerId,
      view: denyModal(message, {
        requestId: request.id,
        ...(click.channelId !== undefined ? { channelId: click.channelId } : {}),
      }),
    });
    // Recorded after the form opens: Slack's trigger id lapses three seconds after
    // the click, and a slow write must not cost the reviewer the form. The denial
    // itself is recorded when the form is submitted; a failure here is only logged.
    try {
      await recordFormOpened(deps, {
        requestId: click.requestId,
        reviewer,
        channel: "slack",
        channelUserId: click.slackUserId,
        form: "deny",
      });
    } catch (error) {
      logger.warn("slack deny click not recorded", {
        request_id: click.requestId,
        error: isWritError(error) ? error.code : (error as Error).name,
      });
    }
  });

  onClick(SLACK_IDS.reveal, "reveal", async (click, reviewer, client) => {
    // Recorded (store and audit log) before anything is shown.
    const fields = await revealMasked(deps, reviewer, click.requestId, "slack", click.slackUserId);
    const rendered = revealMessage(click.requestId, fields);
    await tell(client, click, rendered.text, rendered.blocks);
  });

  // The "Open in writ" link button also sends an action; it needs only an ack.
  app.action("writ_open_console", async ({ ack }) => {
    await ack();
  });

  app.view(SLACK_IDS.denyModal, async ({ ack, body, client }) => {
    const parsed = Submission.safeParse(body);
    const reason = parsed.success
      ? normalizeReason(
          parsed.data.view.state.values[SLACK_IDS.reasonBlock]?.[SLACK_IDS.reasonInput]?.value,
        )
      : undefined;
    if (!parsed.success) {
      await ack();
      logger.warn("slack modal payload rejected");
      return;
    }
    if (reason === undefined) {
      await ack({
        response_action: "errors",
        errors: {
          [SLACK_IDS.reasonBlock]:
            "A reason of 1 to 2,000 printable characters is required to deny.",
        },
      });
      return;
    }
    await ack();
    let metadata: z.infer<typeof Metadata>;
    try {
      metadata = Metadata.parse(JSON.parse(parsed.data.view.private_metadata));
    } catch {
      logger.warn("slack modal metadata rejected");
      return;
    }
    const click: ClickContext = {
      slackUserId: parsed.data.user.id,
      requestId: metadata.requestId,
      channelId: metadata.channelId,
    };
    const reviewer = await resolveReviewer(client, click.slackUserId);
    if (reviewer === "unavailable") {
      await tell(client, click, LOOKUP_FAILED_TEXT);
      return;
    }
    if (reviewer === "unknown") {
      await refuse(client, click, "deny", undefined, "unknown_channel_user", UNKNOWN_USER_TEXT);
      return;
    }
    try {
      await assertNotOwnAccount(click.requestId, click.slackUserId);
      await deny(deps, reviewer, click.requestId, reason, "slack", click.slackUserId);
      await tell(
        client,
        click,
        `:no_entry: You denied \`${click.requestId}\`: ${escapeMrkdwn(reason)}`,
      );
    } catch (error) {
      await failed(client, click, "deny", reviewer, error);
    }
  });

  return app;
}
