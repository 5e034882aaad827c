import { readFile, rename, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { EVENT_TYPES, type EventType } from "../../../domain/events.js";
import { compareStreamIds } from "../../../domain/stream-id.js";
import type { WritClient, WritEvent } from "../../../sdk/client.js";
import { isWritApiError } from "../../../sdk/errors.js";
import { type Command, EXIT, UsageError } from "../../command.js";
import {
  connectFromEnv,
  ENVIRONMENT_HELP,
  parseCommandLine,
  rejectPositionals,
  reportApiErrors,
} from "../client-context.js";
import { eventLine } from "./render-event.js";

const EVENT_ID = /^[0-9-]{1,40}$/;
const REQUEST_ID = /^req_[A-Za-z0-9_-]{22}$/;
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,255}$/;
const PAGE_SIZE = 500;
const WAIT_SECONDS = 30;
const MAX_BACKOFF_MS = 30_000;
/** Request ids whose agent is known; cleared when full, it is only a cache. */
const MAX_AGENT_CACHE = 10_000;

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
  if (!EVENT_ID.test(id)) throw new UsageError(`${path} does not hold an event id`);
  return id;
}

/** Written beside, then renamed: a crash leaves the old position or the new, never half. */
async function writeCursor(path: string, id: string): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${id}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** Which agent a request belongs to: from its `request.created`, or by asking once. */
function agentResolver(client: WritClient) {
  const agents = new Map<string, string>();
  return {
    learn(event: WritEvent) {
      if (event.type === "request.created" && typeof event.data.agent === "string") {
        if (agents.size >= MAX_AGENT_CACHE) agents.clear();
        agents.set(event.request_id, event.data.agent);
      }
    },
    async agentOf(event: WritEvent): Promise<string | undefined> {
      if (event.request_id === "") return undefined;
      let agent = agents.get(event.request_id);
      if (agent === undefined) {
        try {
          agent = (await client.get(event.request_id)).agent;
        } catch (error) {
          // A request the store no longer holds (a restarted dev store) is nobody's.
          if (!isWritApiError(error) || error.code !== "not_found") throw error;
          agent = "";
        }
        if (agents.size >= MAX_AGENT_CACHE) agents.clear();
        agents.set(event.request_id, agent);
      }
      return agent === "" ? undefined : agent;
    },
  };
}

export const auditTailCommand: Command = {
  path: ["audit", "tail"],
  summary: "Follow recorded events live (auditors); resumable with --cursor-file",
  help: `
Usage: writ audit tail [--type <type>] [--agent <id>] [--request <id>]
                       [--after <event id> | --from-start] [--cursor-file <file>] [--json]

Prints events as they are recorded, until interrupted (Ctrl-C). It starts at
the end of the stream, unless told where: --after an event id, --from-start,
or the position saved in --cursor-file. With --cursor-file the position is
saved after every batch, so a shipper that stops resumes where it stopped
(each event is printed at least once).

Options:
  --type <type>         Only this event type, e.g. credential.issued
  --agent <id>          Only events of this agent's requests
  --request <id>        Only events of this request
  --after <event id>    Start after this event
  --from-start          Start at the beginning of the stream
  --cursor-file <file>  Read the start position from, and save it to, this file
  --json                One JSON object per line (as GET /v1/events has them)

Exit codes: 0 interrupted; 1 server error; 2 bad command line.
${ENVIRONMENT_HELP}
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
    if (values.after !== undefined && !EVENT_ID.test(values.after)) {
      throw new UsageError("--after takes an event id");
    }
    if (values.after !== undefined && values["from-start"]) {
      throw new UsageError("give --after or --from-start, not both");
    }
    const cursorFile = values["cursor-file"];
    const client = connectFromEnv(io);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      return await reportApiErrors("audit tail", io, async () => {
        let after =
          values.after ?? (cursorFile !== undefined ? await readCursor(cursorFile) : undefined);
        if (after === undefined && !values["from-start"]) {
          after = (await client.events({ limit: 1 }, { signal: stop.signal })).last_id;
        }
        // Saved at once: a shipper that stops before the first event resumes from here.
        if (after !== undefined && cursorFile !== undefined) await writeCursor(cursorFile, after);
        const resolver = agentResolver(client);
        let backoffMs = 500;
        while (!stop.signal.aborted) {
          let page: Awaited<ReturnType<WritClient["events"]>>;
          try {
            page = await client.events(
              {
                limit: PAGE_SIZE,
                wait: WAIT_SECONDS,
                ...(after !== undefined ? { after } : {}),
                ...(type !== undefined ? { type: type as EventType } : {}),
                ...(values.request !== undefined ? { request_id: values.request } : {}),
              },
              { signal: stop.signal },
            );
            backoffMs = 500;
          } catch (error) {
            if (stop.signal.aborted) break;
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
            resolver.learn(event);
            if (values.agent !== undefined) {
              const mine =
                (event.actor.kind === "agent" && event.actor.id === values.agent) ||
                (await resolver.agentOf(event)) === values.agent;
              if (!mine) continue;
            }
            lines.push(values.json ? JSON.stringify(event) : eventLine(event));
          }
          if (lines.length > 0) io.stdout(`${lines.join("\n")}\n`);
          const last = page.items.at(-1)?.id;
          // Nothing matched up to last_id (it was read before the query): move past it.
          const next =
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
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};
