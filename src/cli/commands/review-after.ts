import { parseArgs } from "node:util";
import type { WritRequest } from "../../sdk/client.js";
import { type Command, EXIT, UsageError } from "../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  printJson,
  reportApiErrors,
  requestIdArgument,
} from "./client-context.js";

function outcome(request: WritRequest): string {
  const review = request.review_after?.review;
  if (review === undefined) return `reviewed ${request.id} after the fact`;
  const verdict = review.verdict === "ok" ? "no concern" : "concern recorded";
  return `reviewed ${request.id} after the fact: ${verdict} (the request is ${request.status})`;
}

export const reviewAfterCommand: Command = {
  path: ["review-after"],
  summary: "Review an issued request after the fact: ok, or a concern (reviewers)",
  help: `
Usage: writ review-after <id> (--ok | --concern) [--note <text>] [--json]

Records your look back at a request that a policy allowed on condition that
someone reviews it afterwards (@review_after), once its credential was issued.
The first review closes it. You cannot review a request of an agent you own or
that acts on your behalf. A concern is recorded for the security team; it
revokes nothing (use \`writ revoke\` for that). List what waits with
\`GET /v1/requests?awaiting=review_after\` or the console's After review page.

Options:
  --ok              Nothing wrong
  --concern         Something is wrong; --note says what (required)
  --note <text>     A note recorded with the review
  --json            Print the request after your review

Exit codes: 0 review recorded; 1 refused by the server (e.g.
self_approval_forbidden, not_an_approver, already_reviewed_after,
not_reviewable_after) or network error; 2 bad command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: {
          ok: { type: "boolean", default: false },
          concern: { type: "boolean", default: false },
          note: { type: "string" },
          json: { type: "boolean", default: false },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    const id = requestIdArgument(positionals);
    if (values.ok === values.concern) {
      throw new UsageError("give exactly one of --ok and --concern");
    }
    const note = values.note;
    if (values.concern && (note === undefined || note.trim() === "")) {
      throw new UsageError("--note is required with --concern: say what is wrong");
    }
    const client = connectFromEnv(io);
    return reportApiErrors("review-after", io, async () => {
      const request = await client.reviewAfter(id, values.ok ? "ok" : "concern", note);
      if (values.json) printJson(io, request);
      else io.stdout(`${outcome(request)}\n`);
      return EXIT.ok;
    });
  },
};
