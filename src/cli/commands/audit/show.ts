import { timelineStep } from "../../../console/timeline.js";
import type { RecordedEvent } from "../../../domain/events.js";
import type { WritEvent } from "../../../sdk/client.js";
import { type Command, EXIT } from "../../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseIdAndJson,
  reportApiErrors,
} from "../client-context.js";
import { describeRequest, printable } from "../render-request.js";

const PAGE_SIZE = 1000;
/**
 * Consecutive events of one type beyond this many are folded into one line: a
 * resource server replaying a token adds an event each time, and the story's
 * end (a revoke, the expiry) must not drown under them.
 */
const RUN_SHOWN = 3;

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

function stepLines(event: WritEvent): string[] {
  const step = timelineStep(asRecorded(event));
  return [
    `  ${step.time}  ${step.title}  [${step.type}, ${step.actor}]`,
    ...step.facts.map(([label, value]) => `      ${label}: ${value}`),
  ];
}

/**
 * Prints events as they come, folding a run of more than {@link RUN_SHOWN}
 * consecutive events of one type into its first ones and a count, with the
 * time of the last.
 */
class RunFolder {
  #type: string | undefined;
  #count = 0;
  #last: WritEvent | undefined;

  constructor(private readonly print: (lines: string[]) => void) {}

  add(event: WritEvent): void {
    if (event.type !== this.#type) {
      this.end();
      this.#type = event.type;
    }
    this.#count++;
    this.#last = event;
    if (this.#count <= RUN_SHOWN) this.print(stepLines(event));
  }

  end(): void {
    const hidden = this.#count - RUN_SHOWN;
    if (hidden > 0 && this.#last !== undefined) {
      this.print([`  … ${hidden} more ${this.#type} event(s), the last at ${this.#last.time}`]);
    }
    this.#type = undefined;
    this.#count = 0;
    this.#last = undefined;
  }
}

export const auditShowCommand: Command = {
  path: ["audit", "show"],
  summary: "Print one credential's whole story: request, decision, reviews, issue, use",
  help: `
Usage: writ audit show <request-id> [--json]

Prints a request and its timeline: who asked, for what and why, which policy
decided, who approved or denied when (and in which channel), when the
credential was issued, when and by whom it was used, any blocked replay, and
how it ended. Every event is read, however many; more than ${RUN_SHOWN} in a row of
one type (a flood of blocked replays) are counted on one line.

Options:
  --json   Print { "request": {...}, "events": [...] }, every event

Exit codes: 0 shown; 1 server or network error (e.g. not_found); 2 bad
command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { id, json } = parseIdAndJson(args);
    const client = connectFromEnv(io);
    return reportApiErrors("audit show", io, async () => {
      const request = await client.get(id);
      // Page by page, each written as it arrives: memory stays one page,
      // however long the story.
      const pages = async function* () {
        let after: string | undefined;
        do {
          const page = await client.events({
            request_id: id,
            limit: PAGE_SIZE,
            ...(after !== undefined ? { after } : {}),
          });
          yield page.items;
          after = page.next;
        } while (after !== undefined);
      };
      if (json) {
        const head = JSON.stringify({ request, events: [] });
        io.stdout(`${head.slice(0, -2)}`);
        let first = true;
        for await (const items of pages()) {
          for (const event of items) {
            io.stdout(`${first ? "" : ","}${JSON.stringify(event)}`);
            first = false;
          }
        }
        io.stdout("]}\n");
        return EXIT.ok;
      }
      io.stdout(`${[...describeRequest(request), "", "Timeline:"].map(printable).join("\n")}\n`);
      const run = new RunFolder((lines) => io.stdout(`${lines.map(printable).join("\n")}\n`));
      for await (const items of pages()) for (const event of items) run.add(event);
      run.end();
      return EXIT.ok;
    });
  },
};
