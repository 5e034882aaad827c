import { readFile, rename, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { EVENT_TYPES, type EventType } from "../../../domain/events.js";
import { AGENT_ID } from "../../../domain/principal.js";
import { compareStreamIds, eventIdForm } from "../../../domain/stream-id.js";
import type { WritClient } from "../../../sdk/client.js";
import { isWritApiError } from "../../../sdk/errors.js";
import { type Command, type CommandIo, EXIT, UsageError } from "../../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  rejectPositionals,
  reportApiErrors,
} from "../client-context.js";
import { createEventFilter } from "./event-filter.js";
import { eventLine } from "./render-event.js";

const REQUEST_ID = /^req_[A-Za-z0-9_-]{22}$/;
const EVENT_ID_EXAMPLE = "as writ prints them, e.g. 17 or 1768467600000-3";
const PAGE_SIZE = 500;
const WAIT_SECONDS = 30;
const MAX_BACKOFF_MS = 30_000;

async function readCursor(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const id = text.trim();
  if (id === "") return undefined;
  if (eventIdForm(id) === undefined) {
    throw new UsageError(`${path} does not hold an event id (${EVENT_ID_EXAMPLE})`);
  }
  return id;
}

/** Written beside, then renamed: a crash leaves the old position or the new, never half. */
async function writeCursor(path: string, id: string): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${id}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** The agent of a request, asked of the server; undefined once the store no longer holds it. */
function agentFromApi(client: WritClient) {
  return async (requestId: string): Promise<string | undefined> => {
    try {
      return (await client.get(requestId)).agent;
    } catch (error) {
      // A request the store no longer holds (a restarted dev store) is nobody's.
      if (!isWritApiError(error) || error.code !== "not_found") throw error;
      return undefined;
    }
  };
}

/** Runs `body` until SIGINT or SIGTERM, which abort its signal. */
async function untilInterrupted(body: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await body(stop.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

interface ApiTailOptions {
  readonly type: EventType | undefined;
  readonly request: string | undefined;
  readonly agent: string | undefined;
  readonly after: string | undefined;
  readonly fromStart: boolean;
  readonly cursorFile: string | undefined;
  readonly json: boolean;
}

/** The default mode: long-polls of `GET /v1/events` with an auditor key, resumable with a cursor file. */
async function tailApi(
  options: ApiTailOptions,
  io: CommandIo,
  client: WritClient,
  signal: AbortSignal,
): Promise<number> {
  const { type, cursorFile } = options;
  return reportApiErrors("audit tail", io, async () => {
    let after =
      options.after ?? (cursorFile !== undefined ? await readCursor(cursorFile) : undefined);
    if (after === undefined && !options.fromStart) {
      after = (await client.events({ limit: 1 }, { signal })).last_id;
    }
    // Saved at once: a shipper that stops before the first event resumes from here.
    if (after !== undefined && cursorFile !== undefined) await writeCursor(cursorFile, after);
    const matches = createEventFilter({ agent: options.agent }, agentFromApi(client));
    let backoffMs = 500;
    while (!signal.aborted) {
      let page: Awaited<ReturnType<WritClient["events"]>>;
      try {
        page = await client.events(
          {
            limit: PAGE_SIZE,
            wait: WAIT_SECONDS,
            ...(after !== undefined ? { after } : {}),
            ...(type !== undefined ? { type } : {}),
            ...(options.request !== undefined ? { request_id: options.request } : {}),
          },
          { signal },
        );
        backoffMs = 500;
      } catch (error) {
        if (signal.aborted) break;
        // A restarting server or a flaky network: wait and resume from the same place.
        if (isWritApiError(error) && (error.code === "unreachable" || error.status >= 500)) {
          io.stderr(`writ audit tail: ${error.code}; retrying in ${backoffMs / 1000} s\n`);
          await new Promise((resolve) => setTimeout(resolve, backoffMs));
          backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
          continue;
        }
        throw error;
      }
      const lines: string[] = [];
      for (const event of page.items) {
        if (await matches(event))
          lines.push(options.json ? JSON.stringify(event) : eventLine(event));
      }
      if (lines.length > 0) io.stdout(`${lines.join("\n")}\n`);
      const last = page.items.at(-1)?.id;
      // `next` is how far a filtered read scanned, past its last match; only
      // without it did nothing match up to last_id (read before the query).
      const next =
        page.next ??
        last ??
        (page.last_id !== undefined &&
        (after === undefined || compareStreamIds(page.last_id, after) > 0)
          ? page.last_id
          : after);
      if (next !== undefined && next !== after) {
        after = next;
        if (cursorFile !== undefined) await writeCursor(cursorFile, after);
      }
    }
    return EXIT.ok;
  });
}

export const auditTailCommand: Command = {
  path: ["audit", "tail"],
  summary: "Follow recorded events live (auditors), or as a Redis consumer group (--group)",
  help: `
Usage: writ audit tail [--type <type>] [--agent <id>] [--request <id>]
                       [--after <event id> | --from-start] [--cursor-file <file>] [--json]
       writ audit tail --group <name> [--consumer <name>] [--config <file>]
                       [--from-start] [--type <type>] [--agent <id>] [--request <id>] [--json]

Prints events as they are recorded, until interrupted (Ctrl-C).

From a running writ (the default): long-polls GET /v1/events with an auditor
key. It starts at the end of the stream, unless told where: --after an event
id, --from-start, or the position saved in --cursor-file. With --cursor-file
the position is saved after every batch, so a shipper that stops resumes where
it stopped (each event is printed at least once).

From Redis, as a consumer group (--group): reads writ's Redis stream directly,
for SIEM shippers. Redis remembers the group's position and what each consumer
was given; an event is acknowledged (XACK) only after its line is written, and
a restarted consumer prints its unacknowledged events again before new ones
(each event at least once). A new group starts at new events, or at the
beginning of the stream with --from-start; an existing group resumes where it
stopped. Redis comes from --config (the writ configuration file, read as
\`writ serve\` reads it; default WRIT_CONFIG) or WRIT_REDIS_URL; no writ key is
needed, the Redis credentials are.

Options:
  --type <type>         Only this event type, e.g. credential.issued
  --agent <id>          Only events of this agent's requests
  --request <id>        Only events of this request
  --after <event id>    Start after this event
  --from-start          Start at the beginning of the stream (with --group: a new group's start)
  --cursor-file <file>  Read the start position from, and save it to, this file
  --json                One JSON object per line (as GET /v1/events has them)
  --group <name>        Read as this Redis consumer group (created if missing)
  --consumer <name>     This reader's name in the group (default: the host name).
                        Keep it stable: pending events belong to it
  --config <file>       With --group: the writ configuration naming Redis

Exit codes: 0 interrupted; 1 server or Redis error (unreachable at start,
refused, stdout closed); 2 bad command line.
${ENVIRONMENT_HELP}
  WRIT_CONFIG With --group: the configuration file, if --config is not given
  WRIT_REDIS_URL
              With --group: the Redis URL (replaces redis.url)
`,
  async run(args, io) {
    const { values, positionals } = parseCommandLine(() =>
      parseArgs({
        args: [...args],
        options: {
          type: { type: "string" },
          agent: { type: "string" },
          request: { type: "string" },
          after: { type: "string" },
          "from-start": { type: "boolean", default: false },
          "cursor-file": { type: "string" },
          json: { type: "boolean", default: false },
          group: { type: "string" },
          consumer: { type: "string" },
          config: { type: "string" },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    rejectPositionals(positionals);
    const type = values.type;
    if (type !== undefined && !(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new UsageError(`--type takes an event type: ${EVENT_TYPES.join(", ")}`);
    }
    if (values.request !== undefined && !REQUEST_ID.test(values.request)) {
      throw new UsageError("--request takes a request id (req_ and 22 characters)");
    }
    if (values.agent !== undefined && !AGENT_ID.test(values.agent)) {
      throw new UsageError("--agent takes an agent id");
    }
    // The strict form the server accepts: anything else would only come back as its 400.
    if (values.after !== undefined && eventIdForm(values.after) === undefined) {
      throw new UsageError(`--after takes an event id (${EVENT_ID_EXAMPLE})`);
    }
    if (values.after !== undefined && values["from-start"]) {
      throw new UsageError("give --after or --from-start, not both");
    }
    const { group } = values;
    if (group === undefined) {
      if (values.consumer !== undefined || values.config !== undefined) {
        throw new UsageError("--consumer and --config go with --group");
      }
      const client = connectFromEnv(io);
      return untilInterrupted((signal) =>
        tailApi(
          {
            type: type as EventType | undefined,
            request: values.request,
            agent: values.agent,
            after: values.after,
            fromStart: values["from-start"],
            cursorFile: values["cursor-file"],
            json: values.json,
          },
          io,
          client,
          signal,
        ),
      );
    }
    // Loaded only here: the Redis client is heavy, and every other command would pay for it.
    const { auditStreamConfigured, defaultConsumer, GROUP_NAME, tailConsumerGroup } = await import(
      "./tail-group.js"
    );
    if (!GROUP_NAME.test(group)) {
      throw new UsageError(
        "--group takes a name of 1-64 letters, digits and _ . : @ - (starting with a letter or digit)",
      );
    }
    const consumer = values.consumer ?? defaultConsumer();
    if (!GROUP_NAME.test(consumer)) {
      throw new UsageError(
        "--consumer takes a name of 1-64 letters, digits and _ . : @ - (starting with a letter or digit)",
      );
    }
    if (values.after !== undefined || values["cursor-file"] !== undefined) {
      throw new UsageError(
        "--group keeps its position in Redis: drop --after and --cursor-file (use --from-start for a new group)",
      );
    }
    if (!auditStreamConfigured(values.config, io.env)) {
      throw new UsageError(
        "--group reads writ's Redis stream: pass --config <file> (the writ configuration) or set WRIT_REDIS_URL",
      );
    }
    return untilInterrupted((signal) =>
      tailConsumerGroup(
        {
          configFile: values.config,
          group,
          consumer,
          fromStart: values["from-start"],
          filter: { type, requestId: values.request, agent: values.agent },
          json: values.json,
        },
        io,
        signal,
      ),
    );
  },
};
