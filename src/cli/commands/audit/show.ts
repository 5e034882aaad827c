import { timelineStep } from "../../../console/timeline.js";
import type { RecordedEvent } from "../../../domain/events.js";
import type { WritEvent } from "../../../sdk/client.js";
import { type Command, EXIT } from "../../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseIdAndJson,
  printJson,
  reportApiErrors,
} from "../client-context.js";
import { describeRequest, printable } from "../render-request.js";

const PAGE_SIZE = 1000;
/** A request has a handful of events; a flood of replays is summarized past this. */
const MAX_EVENTS = 5000;

function asRecorded(event: WritEvent): RecordedEvent {
  return {
    id: event.id,
    type: event.type,
    requestId: event.request_id,
    actor: { kind: event.actor.kind as RecordedEvent["actor"]["kind"], id: event.actor.id },
    time: Date.parse(event.time),
    data: event.data as RecordedEvent["data"],
  };
}

export const auditShowCommand: Command = {
  path: ["audit", "show"],
  summary: "Print one credential's whole story: request, decision, reviews, issue, use",
  help: `
Usage: writ audit show <request-id> [--json]

Prints a request and its timeline: who asked, for what and why, which policy
decided, who approved or denied when (and in which channel), when the
credential was issued, when and by whom it was used, any blocked replay, and
how it ended.

Options:
  --json   Print { "request": {...}, "events": [...] }

Exit codes: 0 shown; 1 server or network error (e.g. not_found); 2 bad
command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, json } = parseIdAndJson(args);
    const client = connectFromEnv(io);
    return reportApiErrors("audit show", io, async () => {
      const request = await client.get(id);
      const events: WritEvent[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await client.events({
          request_id: id,
          limit: PAGE_SIZE,
          ...(after !== undefined ? { after } : {}),
        });
        events.push(...page.items);
        if (page.next === undefined || events.length >= MAX_EVENTS) break;
        after = page.next;
      }
      if (json) {
        printJson(io, { request, events });
        return EXIT.ok;
      }
      const lines = [...describeRequest(request), "", "Timeline:"];
      for (const step of events.map((e) => timelineStep(asRecorded(e)))) {
        lines.push(`  ${step.time}  ${step.title}  [${step.type}, ${step.actor}]`);
        for (const [label, value] of step.facts) lines.push(`      ${label}: ${value}`);
      }
      if (events.length >= MAX_EVENTS) lines.push(`  … more than ${MAX_EVENTS} events; see --json`);
      io.stdout(`${lines.map(printable).join("\n")}\n`);
      return EXIT.ok;
    });
  },
};
