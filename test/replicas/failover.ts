import { createClient } from "redis";
import { expect } from "vitest";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { APPROVAL_FLOW_EVENTS, CUSTOMERS_EXPORT } from "../support/api.js";
import { redisCommand } from "../support/redis.js";
import { waitFor } from "../support/wait.js";
import type { WritProcess } from "../support/writ-process.js";
import { approvalFlow, call, logFiles, loggedEventIds } from "./http.js";

export interface FailoverCase {
  /** A `writ serve` of the production setup, on the Redis deployment that fails over. */
  readonly writ: WritProcess;
  readonly key: (id: string) => string;
  /** Its data directory, where its audit log is. */
  readonly dataDir: string;
  /** Promotes the replica and resolves once the old primary follows it. */
  failover(): Promise<void>;
  /** The promoted server, as a plain standalone URL. */
  readonly promotedUrl: string;
}

/**
 * What a failover of writ's Redis must leave true, without restarting writ:
 * its connections move to the promoted server, a whole request, approval,
 * collect and consume succeed there (calls during the switch may answer 503),
 * an approval wakes an agent's long-poll at once (the change feed reads the
 * new primary), and the audit log holds every event from both sides of the
 * switch and verifies.
 */
export async function expectServedAcrossFailover(c: FailoverCase): Promise<void> {
  const { writ, key } = c;
  const before = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
  expect(before.events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
  // A request waiting for reviewers across the failover, one approval in.
  const pending = await call<{ id: string }>(
    writ.url,
    "POST",
    "/v1/requests",
    key("report-agent"),
    CUSTOMERS_EXPORT,
  );
  expect(pending.status).toBe(201);
  const { id } = pending.body;
  expect((await call(writ.url, "POST", `/v1/requests/${id}/approve`, key("bob"), {})).status).toBe(
    200,
  );

  // Before: writ talks to the primary only (clients name themselves "writ").
  const writClients = async () =>
    String(await redisCommand(c.promotedUrl, ["CLIENT", "LIST"]))
      .split("\n")
      .filter((line) => / name=writ /.test(line)).length;
  expect(await writClients()).toBe(0);

  await c.failover();

  let after: Awaited<ReturnType<typeof approvalFlow>> | undefined;
  await waitFor("a whole approval flow on the new primary", async () => {
    after = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
    return true;
  });
  expect(after?.events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
  const promoted = await createClient({ url: c.promotedUrl })
    .on("error", () => {})
    .connect();
  try {
    // After: writ's own connections are on the promoted server.
    expect(await writClients()).toBeGreaterThan(0);
    const stream = (await promoted.xRange("{writ}:events", "-", "+")) ?? [];
    const inPromoted = new Set(stream.map((e) => e.id));
    for (const event of after?.events ?? []) expect(inPromoted.has(event.id)).toBe(true);
  } finally {
    promoted.destroy();
  }

  // The change feed reads the new primary: the deciding approval wakes a waiting agent.
  const poll = call<{ status: string }>(
    writ.url,
    "GET",
    `/v1/requests/${id}?wait=20&while=pending`,
    key("report-agent"),
  );
  const started = Date.now();
  expect(
    (await call(writ.url, "POST", `/v1/requests/${id}/approve`, key("carol"), {})).status,
  ).toBe(200);
  expect((await poll).body.status).toBe("approved");
  expect(Date.now() - started).toBeLessThan(5_000);

  // Its audit log holds every event from before and after the failover, and verifies.
  expect((await call(writ.url, "GET", "/readyz")).status).toBe(200);
  const [file] = await logFiles(c.dataDir);
  expect(file).toBeDefined();
  const logged = await loggedEventIds(file as string);
  for (const event of [...before.events, ...(after?.events ?? [])]) {
    expect(logged.has(event.id), event.type).toBe(true);
  }
  expect(await verifyLogFile(file as string)).toMatchObject({ ok: true });
}
