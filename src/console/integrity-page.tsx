import type { CheckpointSummary, IntegrityReport } from "../ports/audit-integrity.js";
import { CsrfField, Layout } from "./layout.js";
import type { ConsoleSession } from "./sessions.js";

function Checkpoint(props: { cp: CheckpointSummary }) {
  return (
    <dl class="grid">
      <dt>Seq</dt>
      <dd>{props.cp.seq}</dd>
      <dt>Signed at</dt>
      <dd>{props.cp.time}</dd>
      <dt>Hash</dt>
      <dd class="mono">{props.cp.hash}</dd>
      <dt>Key id</dt>
      <dd class="mono">{props.cp.keyId}</dd>
    </dl>
  );
}

function Report(props: { report: IntegrityReport }) {
  const r = props.report;
  return (
    <div class={`card ${r.ok ? "notice" : "error"}`} role="status">
      {r.ok ? (
        <p class="ok">
          Verified: {r.entries} entries, every hash and {r.checkpoints ?? 0} signed checkpoint(s)
          check out.
        </p>
      ) : (
        <p class="bad">
          Verification failed
          {r.firstBadSeq !== undefined ? ` at seq ${r.firstBadSeq}` : ""}
          {r.segment !== undefined ? ` (${r.segment}, line ${r.line ?? "?"})` : ""}: {r.reason}
        </p>
      )}
      <p class="muted">
        Checked {new Date(r.checkedAt).toISOString()} in {r.durationMs} ms.
      </p>
    </div>
  );
}

export function IntegrityPage(props: {
  session: ConsoleSession;
  lastSeq: number;
  lastCheckpoint: CheckpointSummary | undefined;
  report: IntegrityReport | undefined;
  keyId: string;
}) {
  return (
    <Layout title="Log integrity" session={props.session} section="integrity">
      <h1>Log integrity</h1>
      {props.report !== undefined ? (
        <Report report={props.report} />
      ) : (
        <p class="card muted">Not verified since this writ started.</p>
      )}
      <form method="post" action="/console/integrity/verify" class="card">
        <CsrfField token={props.session.csrfToken} />
        <p>
          Checks every entry's hash and link, and every checkpoint's signature, up to the last entry
          on disk (seq {props.lastSeq}).
        </p>
        <button type="submit">Verify now</button>
      </form>
      <h2>Last signed checkpoint</h2>
      <div class="card">
        {props.lastCheckpoint !== undefined ? (
          <Checkpoint cp={props.lastCheckpoint} />
        ) : (
          <p class="muted">None yet.</p>
        )}
      </div>
      <h2>Verify offline</h2>
      <div class="card">
        <p>
          The checkpoint public key (id <code>{props.keyId}</code>) is at{" "}
          <a href="/v1/audit/checkpoint-key">/v1/audit/checkpoint-key</a>. Keep a copy apart from
          the log and run <code>writ audit verify &lt;log dir&gt; --checkpoint-key key.json</code>.
        </p>
      </div>
    </Layout>
  );
}
