import { REQUEST_STATUSES, STAGE_DEADLINES } from "../domain/request.js";
import type { requestView } from "../http/views.js";
import type { Activity } from "../service/activity.js";
import { AfterReviewBlock, type AfterReviewOption } from "./after-review.js";
import { ActivityChart } from "./chart.js";
import { CsrfField, Layout, Status } from "./layout.js";
import type { ReviewOptions } from "./review-block.js";
import type { ConsoleSession } from "./sessions.js";
import type { TimelineStep } from "./timeline.js";

export type RequestView = ReturnType<typeof requestView>;

/** The list filters as the form shows them (strings, as typed). */
export interface ListFilters {
  status?: string;
  agent?: string;
  action?: string;
  since?: string;
  until?: string;
}

const when = (iso: string) => `${iso.slice(0, 19).replace("T", " ")} UTC`;

function query(filters: ListFilters, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) {
    if (typeof v === "string" && v !== "") params.set(k, v);
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

function RequestRows(props: { items: readonly RequestView[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th>Created</th>
          <th>Status</th>
          <th>Agent</th>
          <th>Action</th>
          <th>Resource</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((r) => (
          <tr>
            <td>
              <a href={`/console/requests/${r.id}`}>{when(r.created_at)}</a>
            </td>
            <td>
              <Status status={r.status} />
            </td>
            <td>
              {r.agent} <span class="muted">({r.owner})</span>
            </td>
            <td>
              <code>{r.action}</code>
            </td>
            <td>
              <code>{r.resource}</code>
            </td>
            <td>{r.reason ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function RequestsPage(props: {
  session: ConsoleSession;
  filters: ListFilters;
  items: readonly RequestView[];
  next: string | undefined;
  paged: boolean;
  activity: Activity;
}) {
  const { filters } = props;
  return (
    <Layout title="Requests" session={props.session} section="requests">
      <h1>Requests</h1>
      <ActivityChart activity={props.activity} />
      <form class="filters card" method="get" action="/console/requests">
        <label>
          Status
          <select name="status">
            <option value="">any</option>
            {REQUEST_STATUSES.map((s) => (
              <option value={s} selected={filters.status === s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Agent
          <input name="agent" value={filters.agent ?? ""} maxlength={256} />
        </label>
        <label>
          Action
          <input name="action" value={filters.action ?? ""} maxlength={128} />
        </label>
        <label>
          Created from (UTC)
          <input type="datetime-local" name="since" value={filters.since ?? ""} />
        </label>
        <label>
          Created before (UTC)
          <input type="datetime-local" name="until" value={filters.until ?? ""} />
        </label>
        <button type="submit">Filter</button>
        <a href="/console/requests">Clear</a>
      </form>
      {props.items.length === 0 ? (
        <p class="card muted">No requests match.</p>
      ) : (
        <RequestRows items={props.items} />
      )}
      <div class="pager">
        {props.paged ? <a href={`/console/requests${query(filters)}`}>« Newest</a> : null}
        {props.next !== undefined ? (
          <a href={`/console/requests${query(filters, { cursor: props.next })}`}>Older »</a>
        ) : null}
      </div>
    </Layout>
  );
}

/** A request waiting for the reviewer: both forms, nothing to explain. */
const BOTH_FORMS: ReviewOptions = { approve: true, deny: true };

function ReviewForms(props: { session: ConsoleSession; id: string; options: ReviewOptions }) {
  const { session, id, options } = props;
  return (
    <>
      {options.note !== undefined ? <p class="card muted">{options.note}</p> : null}
      {options.approve || options.deny ? (
        <div class="reviews">
          {options.approve ? (
            <form method="post" action={`/console/requests/${id}/approve`} class="card">
              <CsrfField token={session.csrfToken} />
              <h2>Approve</h2>
              <label>
                Comment (optional)
                <textarea name="comment" maxlength={2000} />
              </label>
              <p>
                <button type="submit">Approve</button>
              </p>
            </form>
          ) : null}
          {options.deny ? (
            <form method="post" action={`/console/requests/${id}/deny`} class="card">
              <CsrfField token={session.csrfToken} />
              <h2>Deny</h2>
              <ReasonAndSubmit action="Deny" />
            </form>
          ) : null}
        </div>
      ) : null}
    </>
  );
}

function RevokeForm(props: { session: ConsoleSession; request: RequestView }) {
  const { session, request: r } = props;
  return (
    <form method="post" action={`/console/requests/${r.id}/revoke`} class="card">
      <CsrfField token={session.csrfToken} />
      <h2>Revoke</h2>
      <p class="muted">
        {r.status !== "issued"
          ? "Stops the request: the agent can no longer collect a credential."
          : r.credential_type === "aws"
            ? "Ends the AWS session now, at AWS first."
            : "Ends the credential now: its token no longer works."}
      </p>
      <ReasonAndSubmit action="Revoke" />
    </form>
  );
}

/** The required reason and the button of a form that ends something (deny, revoke). */
function ReasonAndSubmit(props: { action: string }) {
  return (
    <>
      <label>
        Reason (required)
        <textarea name="reason" required maxlength={2000} />
      </label>
      <p>
        <button type="submit" class="danger">
          {props.action}
        </button>
      </p>
    </>
  );
}

export function RequestPage(props: {
  session: ConsoleSession;
  request: RequestView;
  steps: readonly TimelineStep[];
  /** When the page continues the story: the time of the event it continues after. */
  after: string | undefined;
  /** The event id the next page continues after, when later events exist. */
  next: string | undefined;
  /** The review forms to offer a signed-in reviewer; undefined for an auditor. */
  review: ReviewOptions | undefined;
  /** Whether to offer the Revoke form (reviewers and auditors alike). */
  revocable: boolean;
  /** The after-review form, when offered, or why not (see `afterReviewOption`). */
  afterReview: AfterReviewOption;
  /** What the signed-in person did to this request, as recorded (see `ownOutcomes`). */
  outcomes: readonly string[];
}) {
  const { request: r, session } = props;
  const contextEntries = Object.entries(r.context);
  return (
    <Layout title={r.id} session={session} section="requests">
      <h1>
        Request <span class="mono">{r.id}</span> <Status status={r.status} />
      </h1>
      {props.outcomes.length > 0 ? (
        <div class="card notice" role="status">
          {props.outcomes.map((text) => (
            <p>{text}</p>
          ))}
        </div>
      ) : null}
      <div class="card">
        <dl class="grid">
          <dt>Agent</dt>
          <dd>
            {r.agent} (owner {r.owner}
            {r.on_behalf_of !== undefined ? `, on behalf of ${r.on_behalf_of}` : ""})
          </dd>
          <dt>Action</dt>
          <dd class="mono">{r.action}</dd>
          <dt>Resource</dt>
          <dd class="mono">{r.resource}</dd>
          <dt>Reason</dt>
          <dd>{r.reason ?? "—"}</dd>
          <dt>Ticket</dt>
          <dd>{r.ticket ?? "—"}</dd>
          <dt>Credential</dt>
          <dd>
            {r.credential_type}
            {r.audience !== undefined ? ` for ${r.audience}` : ""}, up to {r.ttl_seconds} s
          </dd>
          <dt>Policy</dt>
          <dd>
            {r.decision.effect} by {r.decision.policies.join(", ") || "no policy"}
            {r.status === "pending" ? `; ${r.pending_approvals} more approval(s) needed` : ""}
          </dd>
          {contextEntries.length > 0 ? (
            <>
              <dt>Context</dt>
              <dd class="mono">
                {contextEntries.map(([k, v]) => (
                  <div>
                    {k}: {typeof v === "string" ? v : JSON.stringify(v)}
                    {r.masked_fields.includes(k) ? " (masked)" : ""}
                  </div>
                ))}
              </dd>
            </>
          ) : null}
          {STAGE_DEADLINES[r.status] !== undefined ? (
            <>
              <dt>{STAGE_DEADLINES[r.status]}</dt>
              <dd>{when(r.expires_at)}</dd>
            </>
          ) : null}
        </dl>
      </div>
      {r.status === "pending" && props.review !== undefined ? (
        <ReviewForms session={session} id={r.id} options={props.review} />
      ) : null}
      <AfterReviewBlock session={session} request={r} option={props.afterReview} />
      {props.revocable ? <RevokeForm session={session} request={r} /> : null}
      <h2>Timeline</h2>
      <div class="card">
        {props.after !== undefined ? (
          <p class="muted">
            Events after {when(props.after)}.{" "}
            <a href={`/console/requests/${r.id}`}>« From the start</a>
          </p>
        ) : null}
        <ol class="timeline">
          {props.steps.map((step) => (
            <li class={step.tone}>
              <div class="when">
                {when(step.time)} · <code>{step.type}</code> · {step.actor}
              </div>
              <div class="title">{step.title}</div>
              {step.facts.length > 0 ? (
                <dl class="grid">
                  {step.facts.map(([label, value]) => (
                    <>
                      <dt>{label}</dt>
                      <dd>{value}</dd>
                    </>
                  ))}
                </dl>
              ) : null}
            </li>
          ))}
        </ol>
        {props.next !== undefined ? (
          <p class="pager">
            <a href={`/console/requests/${r.id}?after=${encodeURIComponent(props.next)}`}>
              Later events »
            </a>
          </p>
        ) : null}
      </div>
    </Layout>
  );
}

export function PendingPage(props: {
  session: ConsoleSession;
  reviewable: readonly RequestView[];
  others: readonly { request: RequestView; why: string }[];
}) {
  const { session } = props;
  return (
    <Layout title="Pending approvals" session={session} section="pending">
      <h1>Pending approvals</h1>
      {session.principal.kind === "reviewer" ? (
        props.reviewable.length === 0 ? (
          <p class="card muted">Nothing is waiting for you.</p>
        ) : (
          props.reviewable.map((r) => (
            <div class="card">
              <p>
                <a href={`/console/requests/${r.id}`} class="mono">
                  {r.id}
                </a>{" "}
                — <strong>{r.agent}</strong> asks for <code>{r.action}</code> on{" "}
                <code>{r.resource}</code>; {r.pending_approvals} more approval(s) needed, until{" "}
                {when(r.expires_at)}.
              </p>
              <p>Reason: {r.reason ?? "—"}</p>
              <ReviewForms session={session} id={r.id} options={BOTH_FORMS} />
            </div>
          ))
        )
      ) : null}
      {props.others.length > 0 ? (
        <>
          <h2>{session.principal.kind === "reviewer" ? "Waiting for others" : "Waiting"}</h2>
          <table>
            <thead>
              <tr>
                <th>Request</th>
                <th>Agent</th>
                <th>Action</th>
                <th>Needs</th>
                <th>Note</th>
              </tr>
            </thead>
            <tbody>
              {props.others.map(({ request: r, why }) => (
                <tr>
                  <td>
                    <a href={`/console/requests/${r.id}`} class="mono">
                      {r.id}
                    </a>
                  </td>
                  <td>{r.agent}</td>
                  <td>
                    <code>{r.action}</code>
                  </td>
                  <td>{r.pending_approvals}</td>
                  <td class="muted">{why}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </Layout>
  );
}
