import { parseArgs } from "node:util";
import { UTC_TIME, utcTimeMs } from "../../../domain/utc-time.js";
import type { WritEvent } from "../../../sdk/client.js";
import { type Command, EXIT, UsageError } from "../../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  rejectPositionals,
  reportApiErrors,
} from "../client-context.js";
import { createProgressBar } from "./progress-bar.js";
import { CSV_HEADER, csvRow } from "./render-event.js";

const PAGE_SIZE = 1000;

/**
 * `2026-01-15` or a full RFC 3339 UTC time, as the API wants it. A day or an
 * hour that does not exist (2026-02-30, 24:00) is refused: `Date.parse` would
 * roll it over into the next month or day, and the export would cover another
 * range than the one asked for.
 */
export function parseTimeOption(value: string, name: string): string {
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00.000Z` : value;
  if (!UTC_TIME.test(iso)) {
    throw new UsageError(`${name} takes a UTC time like 2026-01-15 or 2026-01-15T09:00:00Z`);
  }
  const ms = utcTimeMs(iso);
  if (ms === undefined) throw new UsageError(`${name} ${value} is no such day or time`);
  return new Date(ms).toISOString();
}

export const auditExportCommand: Command = {
  path: ["audit", "export"],
  summary: "Write recorded events, all or a time range, as JSON lines or CSV (auditors)",
  help: `
Usage: writ audit export [--since <time>] [--until <time>] [--format jsonl|csv]

Writes every recorded event (or those from --since, inclusive, to --until,
exclusive) to stdout in stream order: one JSON object per line, or CSV with a
header. On a terminal, a progress bar runs on stderr.

CSV cells are quoted; a cell that a spreadsheet would read as a formula gets a
leading apostrophe.

Options:
  --since <time>     e.g. 2026-01-15 or 2026-01-15T09:00:00Z (UTC)
  --until <time>
  --format <format>  jsonl (default) or csv

Exit codes: 0 exported; 1 server or network error; 2 bad command line.
${ENVIRONMENT_HELP}
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: {
          since: { type: "string" },
          until: { type: "string" },
          format: { type: "string", default: "jsonl" },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const format = values.format;
    if (format !== "jsonl" && format !== "csv") {
      throw new UsageError("--format takes jsonl or csv");
    }
    const since = values.since === undefined ? undefined : parseTimeOption(values.since, "--since");
    const until = values.until === undefined ? undefined : parseTimeOption(values.until, "--until");
    if (since !== undefined && until !== undefined && since >= until) {
      throw new UsageError("--since must be before --until");
    }
    const client = connectFromEnv(io);
    return reportApiErrors("audit export", io, async () => {
      const bar = createProgressBar(io, "exporting");
      const endMs = until !== undefined ? Date.parse(until) : Date.now();
      let startMs = since !== undefined ? Date.parse(since) : undefined;
      let count = 0;
      let after: string | undefined;
      if (format === "csv") io.stdout(`${CSV_HEADER}\n`);
      try {
        for (;;) {
          const page = await client.events({
            limit: PAGE_SIZE,
            ...(since !== undefined ? { since } : {}),
            ...(until !== undefined ? { until } : {}),
            ...(after !== undefined ? { after } : {}),
          });
          const items: WritEvent[] = page.items;
          if (items.length > 0) {
            io.stdout(
              `${items.map((e) => (format === "csv" ? csvRow(e) : JSON.stringify(e))).join("\n")}\n`,
            );
            count += items.length;
            const last = items.at(-1) as WritEvent;
            startMs ??= Date.parse((items[0] as WritEvent).time);
            // Progress by time: how far through the range the last event is.
            const span = endMs - startMs;
            bar.update(span <= 0 ? 1 : (Date.parse(last.time) - startMs) / span, `${count} events`);
          }
          // A filtered read scans the stream in bounded steps: a short or even
          // empty page with `next` is not the end, only how far it got.
          if (page.next === undefined) break;
          after = page.next;
        }
      } finally {
        bar.done();
      }
      io.stderr(`exported ${count} event(s)\n`);
      return EXIT.ok;
    });
  },
};
