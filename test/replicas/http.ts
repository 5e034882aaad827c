import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import { type RedisServer, type RedisServerOptions, startRedisServer } from "../support/redis.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";

export interface Answer<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

/** Calls a writ over HTTP with a bearer key and a JSON body; never throws on a status. */
export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  key?: string,
  body?: unknown,
): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: (text === "" ? {} : JSON.parse(text)) as T,
    headers: res.headers,
  };
}

export interface EventBody {
  id: string;
  type: string;
  request_id: string;
  data: Record<string, unknown>;
}

/** Every event matching `query`, read as an auditor, following `next`. */
export async function allEvents(
  base: string,
  auditorKey: string,
  query: Record<string, string> = {},
): Promise<EventBody[]> {
  const out: EventBody[] = [];
  let after: string | undefined;
  for (;;) {
    const params = new URLSearchParams({ ...query, limit: "1000", ...(after ? { after } : {}) });
    const page = await call<{ items: EventBody[]; next?: string }>(
      base,
      "GET",
      `/v1/events?${params}`,
      auditorKey,
    );
    if (page.status !== 200) throw new Error(`GET /v1/events: ${page.status}`);
    out.push(...page.body.items);
    if (page.body.next === undefined) return out;
    after = page.body.next;
  }
}

/** Statuses and error codes of a batch of answers, counted. */
export function tally(answers: readonly Answer[]) {
  const statuses: Record<number, number> = {};
  const codes: Record<string, number> = {};
  for (const a of answers) {
    statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    const code = (a.body as { error?: { code?: string } }).error?.code;
    if (code !== undefined) codes[code] = (codes[code] ?? 0) + 1;
  }
  return { statuses, codes };
}

/** Every audit log segment under `dir`, at any depth (replica logs included). */
export async function logFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && /^audit-\d{6,}\.jsonl$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The stream ids (`event_id`) of every entry in a log file. */
export async function loggedEventIds(path: string): Promise<Set<string>> {
  const text = await readFile(path, "utf8");
  const ids = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    ids.add((JSON.parse(line) as { event_id: string }).event_id);
  }
  return ids;
}

/**
 * The whole life of a credential over HTTP, as the production setup's
 * principals (test/support/production-config.ts): report-agent asks for the
 * customers export, bob and carol approve, the agent collects the JWT,
 * billing-api consumes it once and is refused a replay. Resolves with the
 * request's events as auditor dana reads them.
 */
export async function approvalFlow(
  base: string,
  key: (id: string) => string,
  request: Record<string, unknown>,
): Promise<{ id: string; events: EventBody[] }> {
  const expectStatus = (answer: Answer, status: number, what: string) => {
    if (answer.status !== status) {
      throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  };
  const created = await call<{ id: string; status: string }>(
    base,
    "POST",
    "/v1/requests",
    key("report-agent"),
    request,
  );
  expectStatus(created, 201, "POST /v1/requests");
  const { id } = created.body;
  for (const reviewer of ["bob", "carol"]) {
    expectStatus(
      await call(base, "POST", `/v1/requests/${id}/approve`, key(reviewer), {}),
      200,
      `approve as ${reviewer}`,
    );
  }
  const collected = await call<{ credential: { token: string } }>(
    base,
    "POST",
    `/v1/requests/${id}/credential`,
    key("report-agent"),
  );
  expectStatus(collected, 200, "collect");
  const { token } = collected.body.credential;
  const consume = () => call(base, "POST", "/v1/tokens/consume", key("billing-api"), { token });
  expectStatus(await consume(), 200, "consume");
  expectStatus(await consume(), 409, "replay");
  return { id, events: await allEvents(base, key("dana"), { request_id: id }) };
}

/** Two `writ serve` processes on one real redis-server, each with its own config. */
export interface ReplicaPair {
  readonly dir: string;
  readonly redis: RedisServer;
  readonly setup: ProductionSetup;
  readonly a: WritProcess;
  readonly b: WritProcess;
  /** The key of a configured principal. */
  key(id: string): string;
  /** Stops both gracefully and removes everything; resolves with their exit codes. */
  stop(): Promise<(number | null | undefined)[]>;
}

export async function startReplicaPair(
  prefix: string,
  redisOptions: RedisServerOptions,
): Promise<ReplicaPair> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const redis = await startRedisServer(redisOptions);
  const setup = await createProductionSetup(dir);
  const env = { WRIT_REDIS_URL: redis.url };
  const start = async (name: string) =>
    startWritProcess(["serve", "--config", await setup.writeConfig(name), "--quiet"], env);
  const [a, b] = await Promise.all([start("a"), start("b")]);
  return {
    dir,
    redis,
    setup,
    a,
    b,
    key: setup.key,
    async stop() {
      const codes = await Promise.all([a.stop(), b.stop()]);
      await redis.dispose();
      await rm(dir, { recursive: true, force: true });
      return codes;
    },
  };
}
