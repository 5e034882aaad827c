import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { WritError } from "../domain/errors.js";
import { AGENT_ID, type Principal } from "../domain/principal.js";
import { type AccessRequest, REQUEST_STATUSES, type RequestStatus } from "../domain/request.js";
import { utcTimeMs } from "../domain/utc-time.js";
import { ERROR_STATUS } from "../http/error-status.js";
import { requestView } from "../http/views.js";
import type { AuditIntegrity } from "../ports/audit-integrity.js";
import type { Logger } from "../ports/logger.js";
import type { RequestQuery } from "../ports/store.js";
import { recentActivity } from "../service/activity.js";
import type { Broker } from "../service/broker.js";
import { requestTimeline } from "../service/request-timeline.js";
import { AfterReviewPage, afterReviewOption } from "./after-review.js";
import { MAX_FORM_BYTES, readForm, sameOrigin, textField, tokensEqual } from "./forms.js";
import { IntegrityPage } from "./integrity-page.js";
import { ErrorPage, LoginPage, ReopenPage } from "./layout.js";
import { type ListFilters, PendingPage, RequestPage, RequestsPage } from "./request-pages.js";
import { ownOutcomes, reviewOptions, revocable } from "./review-block.js";
import {
  type ConsolePrincipal,
  type ConsoleSession,
  createSessionStore,
  randomToken,
  type SessionStore,
} from "./sessions.js";
import { CONSOLE_CSS } from "./styles.js";
import { timelineStep } from "./timeline.js";

export interface ConsoleOptions {
  readonly broker: Broker;
  /** The audit log's integrity checks; without it the integrity page says so. */
  readonly audit?: AuditIntegrity | undefined;
  readonly logger: Logger;
  readonly idleTimeoutSeconds: number;
  readonly sessionMaxSeconds: number;
  /**
   * Cookies only over HTTPS: `Secure`, with the `__Host-` name prefix (so no
   * subdomain or plain-http page can set or shadow them). Set from
   * `console.secure_cookies`, never from request headers a proxy may not send.
   */
  readonly secureCookies: boolean;
  /**
   * Where sessions live (default: this process's memory). `writ serve` keeps
   * them in Redis, so any replica or worker serves any page.
   */
  readonly sessions?: SessionStore;
}

type ConsoleEnv = { Variables: { session: ConsoleSession; sessionId: string } };

const SESSION_COOKIE = "writ_console";
const LOGIN_COOKIE = "writ_console_login";
const LOGIN_FORM_SECONDS = 600;
const REQUEST_ID = /^req_[A-Za-z0-9_-]{22}$/;
const ACTION = /^[A-Za-z0-9][A-Za-z0-9_.*:/-]{0,127}$/;
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z?$/;
// As the API's list cursor: the Redis store's positions are 27 digits.
const CURSOR = /^\d{1,32}$/;
const PAGE_SIZE = 50;
const MAX_PENDING = 1000;

/**
 * No script may run, no style may be inline, nothing may frame the console, and
 * forms post only to it. Pages are never cached: they show who approved what.
 */
const CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/**
 * How the console's cookies are named and scoped. Secure: `__Host-<name>`,
 * `Secure`, `Path=/` (the prefix demands it; nothing else on the origin reads
 * cookies). Otherwise (plain http on loopback, `writ dev`): `<name>`,
 * `Path=/console`. Always HttpOnly and SameSite=Strict.
 */
function cookieJar(secure: boolean) {
  const prefix = secure ? ("host" as const) : undefined;
  const scope = secure ? { prefix: "host" as const, path: "/" } : { path: "/console" };
  return {
    get: (c: Context, name: string) => getCookie(c, name, prefix),
    set: (c: Context, name: string, value: string, maxAge?: number) =>
      setCookie(c, name, value, {
        ...scope,
        httpOnly: true,
        sameSite: "Strict",
        secure,
        ...(maxAge !== undefined ? { maxAge } : {}),
      }),
    delete: (c: Context, name: string) =>
      deleteCookie(c, name, { ...scope, httpOnly: true, sameSite: "Strict", secure }),
  };
}

/**
 * A time typed in the filter form, read as UTC; undefined when empty. A day or
 * an hour that does not exist is refused, not rolled over into another.
 */
function parseTime(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!LOCAL_TIME.test(value)) throw new WritError("validation_failed", `${name} is not a time.`);
  const ms = utcTimeMs(value.endsWith("Z") ? value : `${value}Z`);
  if (ms === undefined) {
    throw new WritError("validation_failed", `${name} is no such day or time.`);
  }
  return ms;
}

function filtersOf(c: Context): { filters: ListFilters; cursor: string | undefined } {
  const q = (name: string) => {
    const v = c.req.query(name);
    return v === undefined || v === "" ? undefined : v;
  };
  const filters: ListFilters = {};
  const status = q("status");
  if (status !== undefined) {
    if (!(REQUEST_STATUSES as readonly string[]).includes(status)) {
      throw new WritError("validation_failed", "status is not a request status.");
    }
    filters.status = status;
  }
  const agent = q("agent");
  if (agent !== undefined) {
    if (!AGENT_ID.test(agent))
      throw new WritError("validation_failed", "agent is not an agent id.");
    filters.agent = agent;
  }
  const action = q("action");
  if (action !== undefined) {
    if (!ACTION.test(action)) throw new WritError("validation_failed", "action is not an action.");
    filters.action = action;
  }
  for (const name of ["since", "until"] as const) {
    const value = q(name);
    parseTime(value, name);
    if (value !== undefined) filters[name] = value;
  }
  const cursor = q("cursor");
  if (cursor !== undefined && !CURSOR.test(cursor)) {
    throw new WritError("validation_failed", "cursor is not a cursor.");
  }
  return { filters, cursor };
}

/** Whether the browser says this is a page opened from a link on another site. */
function crossSiteNavigation(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  return (
    c.req.header("sec-fetch-mode") === "navigate" && (site === "cross-site" || site === "same-site")
  );
}

/** The web console: server-rendered pages for reviewers and auditors, no JavaScript. */
export function createConsole(options: ConsoleOptions) {
  const { broker, audit, logger } = options;

  /**
   * The newest requests of one index (pending, or awaiting review after the
   * fact), up to MAX_PENDING: a page of the list per read, so a long queue
   * costs a bounded number of reads.
   */
  async function firstListed(
    principal: Principal,
    query: Pick<RequestQuery, "status" | "awaiting">,
  ): Promise<AccessRequest[]> {
    const items: AccessRequest[] = [];
    let cursor: string | undefined;
    do {
      const page = await broker.list(principal, {
        ...query,
        limit: 200,
        ...(cursor !== undefined ? { cursor } : {}),
      });
      items.push(...page.items);
      cursor = page.next;
    } while (cursor !== undefined && items.length < MAX_PENDING);
    return items;
  }
  const sessions =
    options.sessions ??
    createSessionStore({
      clock: broker.deps.clock,
      idleTimeoutSeconds: options.idleTimeoutSeconds,
      maxAgeSeconds: options.sessionMaxSeconds,
    });
  const app = new Hono<ConsoleEnv>();
  const cookies = cookieJar(options.secureCookies);

  app.use(async function consoleHeaders(c, next) {
    await next();
    c.header("Content-Security-Policy", CSP);
    c.header("Cache-Control", "no-store");
  });
  // Bounds a form while it streams in. Signed-in pages apply it only after the
  // session is checked, so a post without one is refused unread.
  const formLimit = bodyLimit({
    maxSize: MAX_FORM_BYTES,
    onError: () => {
      throw new WritError("payload_too_large", "The form is too large.");
    },
  });
  app.use("/login", formLimit);

  const session = createMiddleware<ConsoleEnv>(async function consoleSession(c, next) {
    const id = cookies.get(c, SESSION_COOKIE);
    const stored = id === undefined ? undefined : await sessions.get(id);
    // The session names who signed in; who they are now is the configuration's
    // answer, asked on every request: a reviewer removed, moved out of a group,
    // or given a new key (the old one may have leaked) loses that at once on
    // every replica, not when the session ends.
    const principal = stored === undefined ? undefined : currentPrincipal(stored);
    if (stored !== undefined && principal === undefined && id !== undefined) {
      await sessions.destroy(id);
    }
    const found =
      stored === undefined || principal === undefined ? undefined : { ...stored, principal };
    if (found === undefined || id === undefined) {
      if (c.req.method === "GET") {
        // No cookie on a navigation from another site: SameSite=Strict kept it
        // back, so the reviewer may well be signed in. Asking again from this
        // origin sends it; the second answer, cookie or not, is the real one.
        if (id === undefined && crossSiteNavigation(c)) {
          const url = new URL(c.req.url);
          return c.html(<ReopenPage path={`${url.pathname}${url.search}`} />);
        }
        return c.redirect("/console/login", 303);
      }
      throw new WritError("unauthenticated", "Sign in to the console first.");
    }
    if (c.req.method === "POST") {
      if (!sameOrigin(c, options.secureCookies)) {
        throw new WritError("bad_request", "The form did not come from this console.");
      }
    }
    c.set("session", found);
    c.set("sessionId", id);
    await next();
  });

  /** The principal as configured now, if it still exists as the same kind with the same key. */
  function currentPrincipal(session: ConsoleSession): ConsolePrincipal | undefined {
    const { identities } = broker.deps;
    const { kind, id } = session.principal;
    if (identities.keyTag(kind, id) !== session.keyTag) return undefined;
    return kind === "reviewer" ? identities.reviewer(id) : identities.auditor(id);
  }

  /** Reads a form and checks its CSRF token against the session's. */
  async function checkedForm(c: Context<ConsoleEnv>): Promise<URLSearchParams> {
    const form = await readForm(c);
    if (!tokensEqual(form.get("csrf") ?? undefined, c.get("session").csrfToken)) {
      throw new WritError("bad_request", "The form has expired or did not come from this console.");
    }
    return form;
  }

  function reviewerOf(c: Context<ConsoleEnv>) {
    const principal = c.get("session").principal;
    if (principal.kind !== "reviewer") {
      throw new WritError("wrong_principal_kind", "Only reviewers approve or deny requests.");
    }
    return principal;
  }

  function requestIdOf(c: Context): string {
    const id = c.req.param("id") ?? "";
    if (!REQUEST_ID.test(id)) throw new WritError("not_found", "No such request.");
    return id;
  }

  app.get("/assets/console.css", (c) => {
    c.header("Content-Type", "text/css; charset=utf-8");
    return c.body(CONSOLE_CSS);
  });

  app.get("/", async (c) => {
    const id = cookies.get(c, SESSION_COOKIE);
    const signedIn = id !== undefined && (await sessions.get(id)) !== undefined;
    return c.redirect(signedIn ? "/console/requests" : "/console/login", 303);
  });

  function loginForm(c: Context, status: 200 | 401 | 403, error?: string) {
    const token = randomToken();
    cookies.set(c, LOGIN_COOKIE, token, LOGIN_FORM_SECONDS);
    return c.html(<LoginPage csrf={token} error={error} />, status);
  }

  app.get("/login", async (c) => {
    const id = cookies.get(c, SESSION_COOKIE);
    if (id !== undefined && (await sessions.get(id)) !== undefined) {
      return c.redirect("/console/requests", 303);
    }
    return loginForm(c, 200);
  });

  app.post("/login", async (c) => {
    if (!sameOrigin(c, options.secureCookies))
      return loginForm(c, 403, "The form did not come from this console.");
    const form = await readForm(c);
    // Login CSRF: the form's token must match the cookie set with the form.
    if (!tokensEqual(form.get("csrf") ?? undefined, cookies.get(c, LOGIN_COOKIE))) {
      return loginForm(c, 403, "The sign-in form expired; please try again.");
    }
    const key = form.get("key") ?? "";
    const principal = key === "" ? undefined : await broker.deps.identities.authenticate(key);
    if (principal === undefined) return loginForm(c, 401, "The key is not valid.");
    if (principal.kind !== "reviewer" && principal.kind !== "auditor") {
      logger.warn("console sign-in refused", { kind: principal.kind, id: principal.id });
      return loginForm(c, 403, "Only reviewer and auditor keys can sign in to the console.");
    }
    // A fresh id at every sign-in: a session id planted before it is worthless.
    const previous = cookies.get(c, SESSION_COOKIE);
    if (previous !== undefined) await sessions.destroy(previous);
    // Only principals with a configured key get here (workload tokens are agents).
    const keyTag = broker.deps.identities.keyTag(principal.kind, principal.id);
    if (keyTag === undefined) return loginForm(c, 401, "The key is not valid.");
    const created = await sessions.create(principal as ConsolePrincipal, keyTag);
    cookies.set(c, SESSION_COOKIE, created.id);
    cookies.delete(c, LOGIN_COOKIE);
    logger.info("console sign-in", { kind: principal.kind, id: principal.id });
    return c.redirect("/console/requests", 303);
  });

  app.use("/logout", session);
  app.use("/logout", formLimit);
  app.post("/logout", async (c) => {
    await checkedForm(c);
    await sessions.destroy(c.get("sessionId"));
    cookies.delete(c, SESSION_COOKIE);
    return c.redirect("/console/login", 303);
  });

  app.use("/requests", session);
  app.use("/requests/*", session);
  app.use("/after-review", session);
  app.use("/pending", session);
  app.use("/integrity", session);
  app.use("/integrity/*", session);
  app.use(formLimit);

  app.get("/requests", async (c) => {
    const s = c.get("session");
    const { filters, cursor } = filtersOf(c);
    const since = parseTime(filters.since, "since");
    const until = parseTime(filters.until, "until");
    const page = await broker.list(s.principal, {
      limit: PAGE_SIZE,
      ...(filters.status !== undefined ? { status: filters.status as RequestStatus } : {}),
      ...(filters.agent !== undefined ? { agentId: filters.agent } : {}),
      ...(filters.action !== undefined ? { action: filters.action } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
    const activity = await recentActivity(broker.deps, s.principal, {
      buckets: 24,
      bucketMs: 3_600_000,
    });
    return c.html(
      <RequestsPage
        session={s}
        filters={filters}
        items={page.items.map((r) => requestView(r, s.principal))}
        next={page.next}
        paged={cursor !== undefined}
        activity={activity}
      />,
    );
  });

  app.get("/requests/:id", async (c) => {
    const s = c.get("session");
    const afters = c.req.queries("after");
    if (afters !== undefined && afters.length > 1) {
      throw new WritError("validation_failed", "after is given more than once.");
    }
    const { request, events, after, next, revocation } = await requestTimeline(
      broker.deps,
      s.principal,
      requestIdOf(c),
      afters?.[0],
    );
    return c.html(
      <RequestPage
        session={s}
        request={requestView(request, s.principal)}
        steps={events.map(timelineStep)}
        after={after === undefined ? undefined : new Date(after.time).toISOString()}
        next={next}
        review={s.principal.kind === "reviewer" ? reviewOptions(request, s.principal) : undefined}
        revocable={revocable(request)}
        afterReview={afterReviewOption(request, s.principal)}
        outcomes={ownOutcomes(request, s.principal, revocation)}
      />,
    );
  });

  app.post("/requests/:id/approve", async (c) => {
    const form = await checkedForm(c);
    const reviewer = reviewerOf(c);
    const id = requestIdOf(c);
    const comment = textField(form, "comment", 2000);
    await broker.approve(reviewer, id, comment === "" ? undefined : comment, "console");
    return c.redirect(`/console/requests/${id}`, 303);
  });

  app.post("/requests/:id/deny", async (c) => {
    const form = await checkedForm(c);
    const reviewer = reviewerOf(c);
    const id = requestIdOf(c);
    const reason = textField(form, "reason", 2000);
    if (reason === "") throw new WritError("validation_failed", "Give a reason to deny.");
    await broker.deny(reviewer, id, reason, "console");
    return c.redirect(`/console/requests/${id}`, 303);
  });

  app.post("/requests/:id/review-after", async (c) => {
    const form = await checkedForm(c);
    const reviewer = reviewerOf(c);
    const id = requestIdOf(c);
    const verdict = textField(form, "verdict", 16);
    if (verdict !== "ok" && verdict !== "concern") {
      throw new WritError("validation_failed", "Choose no concern or concern.");
    }
    const note = textField(form, "note", 2000);
    if (verdict === "concern" && note === "") {
      throw new WritError("validation_failed", "Say what the concern is in a note.");
    }
    await broker.reviewAfter(reviewer, id, verdict, note === "" ? undefined : note, "console");
    return c.redirect(`/console/requests/${id}`, 303);
  });

  app.get("/after-review", async (c) => {
    const s = c.get("session");
    const items = await firstListed(s.principal, { awaiting: "review_after" });
    return c.html(
      <AfterReviewPage
        session={s}
        items={items.map((request) => ({
          request: requestView(request, s.principal),
          option: afterReviewOption(request, s.principal),
        }))}
      />,
    );
  });

  // Reviewers and auditors alike: the security team's kill switch.
  app.post("/requests/:id/revoke", async (c) => {
    const form = await checkedForm(c);
    const id = requestIdOf(c);
    const reason = textField(form, "reason", 2000);
    if (reason === "") throw new WritError("validation_failed", "Give a reason to revoke.");
    await broker.revoke(c.get("session").principal, id, reason);
    return c.redirect(`/console/requests/${id}`, 303);
  });

  app.get("/pending", async (c) => {
    const s = c.get("session");
    const items = await firstListed(s.principal, { status: "pending" });
    const reviewable = [];
    const others = [];
    for (const request of items) {
      const view = requestView(request, s.principal);
      const options =
        s.principal.kind === "reviewer" ? reviewOptions(request, s.principal) : undefined;
      if (options?.approve === true) reviewable.push(view);
      else others.push({ request: view, why: options?.note ?? "auditors do not review" });
    }
    return c.html(<PendingPage session={s} reviewable={reviewable} others={others} />);
  });

  app.get("/integrity", (c) => {
    if (audit === undefined) throw new WritError("not_found", "This writ keeps no audit log.");
    return c.html(
      <IntegrityPage
        session={c.get("session")}
        lastSeq={audit.lastSeq()}
        lastCheckpoint={audit.lastCheckpoint()}
        report={audit.lastReport()}
        keyId={audit.checkpointKey().keyId}
      />,
    );
  });

  app.post("/integrity/verify", async (c) => {
    await checkedForm(c);
    if (audit === undefined) throw new WritError("not_found", "This writ keeps no audit log.");
    const report = await audit.verifyNow();
    const who = c.get("session").principal;
    logger.info("audit log verified from the console", {
      by: who.id,
      ok: report.ok,
      entries: report.entries,
    });
    return c.redirect("/console/integrity", 303);
  });

  app.notFound((c) =>
    c.html(<ErrorPage status={404} code="not_found" message="No such page." />, 404),
  );
  app.onError((error, c) => {
    const s = (c as Context<ConsoleEnv>).get("session") as ConsoleSession | undefined;
    if (error instanceof WritError) {
      const status = ERROR_STATUS[error.code];
      return c.html(
        <ErrorPage session={s} status={status} code={error.code} message={error.message} />,
        status,
      );
    }
    logger.error("console error", { route: c.req.routePath, error: (error as Error).name });
    return c.html(
      <ErrorPage
        session={s}
        status={500}
        code="internal_error"
        message="Something went wrong on our side."
      />,
      500,
    );
  });
  return app;
}
