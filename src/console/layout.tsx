import type { Child } from "hono/jsx";
import type { ConsoleSession } from "./sessions.js";

export type Section = "requests" | "pending" | "after-review" | "integrity" | "none";

/** The hidden field every console form carries; checked on every POST. */
export function CsrfField(props: { token: string }) {
  return <input type="hidden" name="csrf" value={props.token} />;
}

/** The page frame: navigation, who is signed in, sign-out. No scripts anywhere. */
export function Layout(props: {
  title: string;
  session?: ConsoleSession | undefined;
  section?: Section;
  /** A path on this console to open at once, without script. */
  refreshTo?: string;
  children?: Child;
}) {
  const { session, section = "none" } = props;
  const link = (href: string, name: Section, text: string) => (
    <a href={href} class={section === name ? "active" : undefined}>
      {text}
    </a>
  );
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        {props.refreshTo !== undefined ? (
          <meta http-equiv="refresh" content={`0; url=${props.refreshTo}`} />
        ) : null}
        <title>{`${props.title} · writ console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body>
        <header>
          <span class="brand">writ</span>
          {session !== undefined ? (
            <>
              <nav>
                {link("/console/requests", "requests", "Requests")}
                {link("/console/pending", "pending", "Pending approvals")}
                {link("/console/after-review", "after-review", "After review")}
                {link("/console/integrity", "integrity", "Log integrity")}
              </nav>
              <span class="who">
                <span>
                  {session.principal.id} ({session.principal.kind})
                </span>
                <form method="post" action="/console/logout">
                  <CsrfField token={session.csrfToken} />
                  <button type="submit">Sign out</button>
                </form>
              </span>
            </>
          ) : (
            <nav />
          )}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

/** A status as a coloured pill. */
export function Status(props: { status: string }) {
  return <span class={`status status-${props.status}`}>{props.status}</span>;
}

export function ErrorPage(props: {
  session?: ConsoleSession | undefined;
  status: number;
  code: string;
  message: string;
}) {
  return (
    <Layout title="Error" session={props.session}>
      <h1>Something is not right</h1>
      <div class="card error" role="alert">
        <p>
          <strong>{props.code}</strong> ({props.status}): {props.message}
        </p>
        <p>
          <a href="/console/requests">Back to requests</a>
        </p>
      </div>
    </Layout>
  );
}

/**
 * Opens `path` again from the console's own origin. A link followed from
 * another site (a Slack or Teams "Review in writ" button) arrives without the
 * SameSite=Strict session cookie; the same page asked for by this page carries
 * it. A meta refresh needs no script, so the Content-Security-Policy holds.
 */
export function ReopenPage(props: { path: string }) {
  return (
    <Layout title="Opening" refreshTo={props.path}>
      <p class="card">
        <a href={props.path}>Continue to the console</a>
      </p>
    </Layout>
  );
}

export function LoginPage(props: { csrf: string; error?: string | undefined }) {
  return (
    <Layout title="Sign in">
      <div class="card login">
        <h1>Sign in</h1>
        <p class="muted">Reviewers and auditors sign in with their writ key.</p>
        {props.error !== undefined ? (
          <p class="bad" role="alert">
            {props.error}
          </p>
        ) : null}
        <form method="post" action="/console/login">
          <CsrfField token={props.csrf} />
          <label>
            Key
            <input
              type="password"
              name="key"
              autocomplete="off"
              required
              maxlength={512}
              placeholder="writ_reviewer_… or writ_auditor_…"
            />
          </label>
          <p>
            <button type="submit">Sign in</button>
          </p>
        </form>
      </div>
    </Layout>
  );
}
