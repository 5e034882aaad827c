import { assertEligibleAfterReviewer } from "../domain/after-review.js";
import { isWritError } from "../domain/errors.js";
import type { Principal } from "../domain/principal.js";
import type { AccessRequest } from "../domain/request.js";
import { CsrfField, Layout } from "./layout.js";
import type { RequestView } from "./request-pages.js";
import type { ConsoleSession } from "./sessions.js";

const when = (iso: string) => `${iso.slice(0, 19).replace("T", " ")} UTC`;

/** Whether a page offers the after-review form, and why not when it does not. */
export interface AfterReviewOption {
  readonly offer: boolean;
  /** Why the form is not offered, in words; absent when it is, or nothing waits. */
  readonly note?: string;
}

/**
 * What the signed-in person may do about `request`'s review after the fact.
 * Only decides what a page shows: the broker checks the same rules (rule 2,
 * the groups, first review wins) on every post, whatever a page showed.
 */
export function afterReviewOption(request: AccessRequest, principal: Principal): AfterReviewOption {
  if (request.decision.reviewAfter === undefined || request.reviewedAfter !== undefined) {
    return { offer: false };
  }
  if (request.credential === undefined) {
    return { offer: false, note: "It is reviewed after the fact once a credential is issued." };
  }
  if (principal.kind !== "reviewer") {
    return { offer: false, note: "Reviewers of the named groups review it after the fact." };
  }
  try {
    assertEligibleAfterReviewer(request, principal);
    return { offer: true };
  } catch (error) {
    if (!isWritError(error)) throw error;
    return { offer: false, note: error.message };
  }
}

/** The request page's account of its review after the fact, and the form when offered. */
export function AfterReviewBlock(props: {
  session: ConsoleSession;
  request: RequestView;
  option: AfterReviewOption;
}) {
  const { session, request: r, option } = props;
  const after = r.review_after;
  if (after === undefined) return null;
  const review = after.review;
  return (
    <>
      <h2>After the fact</h2>
      <div class="card">
        {review === undefined ? (
          <p>
            To be reviewed after the fact by a member of {after.groups.join(", ")}
            {r.credential === undefined ? ", once a credential is issued." : "."}
          </p>
        ) : (
          <p>
            Reviewed by <strong>{review.reviewer}</strong> at {when(review.at)}:{" "}
            {review.verdict === "ok" ? "no concern" : <strong>concern</strong>}
            {review.note !== undefined ? ` — ${review.note}` : ""}
          </p>
        )}
        {option.note !== undefined ? <p class="muted">{option.note}</p> : null}
      </div>
      {option.offer ? <AfterReviewForm session={session} id={r.id} /> : null}
    </>
  );
}

/** Records `ok`, or a `concern` with its note. A concern ends nothing: Revoke does. */
function AfterReviewForm(props: { session: ConsoleSession; id: string }) {
  return (
    <form method="post" action={`/console/requests/${props.id}/review-after`} class="card">
      <CsrfField token={props.session.csrfToken} />
      <h2>Review after the fact</h2>
      <p>
        <label>
          <input type="radio" name="verdict" value="ok" required /> No concern
        </label>{" "}
        <label>
          <input type="radio" name="verdict" value="concern" /> Concern
        </label>
      </p>
      <label>
        Note (required for a concern)
        <textarea name="note" maxlength={2000} />
      </label>
      <p class="muted">A concern is recorded for the security team; it revokes nothing.</p>
      <p>
        <button type="submit">Record review</button>
      </p>
    </form>
  );
}

/** Requests whose credential was issued and that wait for their review after the fact. */
export function AfterReviewPage(props: {
  session: ConsoleSession;
  items: readonly { request: RequestView; option: AfterReviewOption }[];
}) {
  const { session } = props;
  return (
    <Layout title="After review" session={session} section="after-review">
      <h1>After review</h1>
      <p class="muted">
        Requests a policy allowed on condition that someone looks back at them (
        <code>@review_after</code>), with their credential issued.
      </p>
      {props.items.length === 0 ? (
        <p class="card muted">Nothing is waiting for a review after the fact.</p>
      ) : (
        props.items.map(({ request: r, option }) => (
          <div class="card">
            <p>
              <a href={`/console/requests/${r.id}`} class="mono">
                {r.id}
              </a>{" "}
              — <strong>{r.agent}</strong> (owner {r.owner}) was issued <code>{r.action}</code> on{" "}
              <code>{r.resource}</code>
              {r.credential !== undefined ? ` at ${when(r.credential.issued_at)}` : ""}; now{" "}
              {r.status}.
            </p>
            <p>
              Reason: {r.reason ?? "—"} · Ticket: {r.ticket ?? "—"}
            </p>
            {option.offer ? (
              <AfterReviewForm session={session} id={r.id} />
            ) : (
              <p class="muted">{option.note}</p>
            )}
          </div>
        ))
      )}
    </Layout>
  );
}
