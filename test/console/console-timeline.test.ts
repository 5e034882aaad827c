import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectRedis,
  createRedisStore,
  type RedisStoreConnection,
} from "../../src/adapters/redis-store.js";
import { silentLogger } from "../../src/ports/logger.js";
import { MAX_TIMELINE_EVENTS } from "../../src/service/request-timeline.js";
import {
  allEvents,
  createRequest,
  issuedToken,
  keyOf,
  NO_REFUSAL_LIMIT,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { ConsoleClient } from "./console-client.js";

// A resource server that replays a token records a `token.replay_blocked` event
// each time: enough of them must not hide what happened after (a completion, a
// revocation) from the people who review the request's story.
const REPLAYS = MAX_TIMELINE_EVENTS + 40;

interface TimelinePage {
  status: number;
  /** The event types shown, in order. */
  types: string[];
  /** The "Later events" link, unescaped, if the page has one. */
  later: string | undefined;
  html: string;
}

async function timelinePage(client: ConsoleClient, path: string): Promise<TimelinePage> {
  const res = await client.get(path);
  const html = await res.text();
  const timeline = html.slice(html.indexOf('<ol class="timeline">'));
  const types = [...timeline.matchAll(/ · <code>([a-z_.]+)<\/code> · /g)].map(
    (m) => m[1] as string,
  );
  const later = /href="(\/console\/requests\/[^"]*)">Later events/.exec(html)?.[1];
  return { status: res.status, types, later: later?.replaceAll("&amp;", "&"), html };
}

describe.each(["memory", "Redis"])("a long timeline on the %s store", (where) => {
  let server: RedisServer | undefined;
  let client: RedisStoreConnection | undefined;
  let t: TestWrit;
  let id: string;
  let dana: ConsoleClient;

  beforeAll(async () => {
    if (where === "Redis") {
      server = await startRedisServer();
      client = await connectRedis({ url: server.url, logger: silentLogger });
      const prefix = `t${randomBytes(6).toString("hex")}`;
      t = await startTestWrit(NO_REFUSAL_LIMIT, {
        store: createRedisStore({ client, prefix, logger: silentLogger }),
      });
    } else {
      t = await startTestWrit(NO_REFUSAL_LIMIT);
    }
    const issued = await issuedToken(t);
    id = issued.id;
    const consume = () =>
      t.call("POST", "/v1/tokens/consume", {
        key: keyOf(t, "billing-api"),
        body: { token: issued.token },
      });
    expect((await consume()).status).toBe(200);
    for (let i = 0; i < REPLAYS; i++) expect((await consume()).status).toBe(409);
    const done = await t.call("POST", `/v1/requests/${id}/complete`, {
      key: keyOf(t, "report-agent"),
    });
    expect(done.status).toBe(200);
    dana = new ConsoleClient(t);
    expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await client?.close();
    await server?.dispose();
  });

  it("pages through every event once, in order, following the Later events link", async () => {
    const recorded = (await allEvents(t, { request_id: id })).map((e) => e.type);
    expect(recorded.at(-1)).toBe("credential.completed");
    const pages: TimelinePage[] = [];
    let next: string | undefined = `/console/requests/${id}`;
    while (next !== undefined) {
      const page = await timelinePage(dana, next);
      expect(page.status, next).toBe(200);
      pages.push(page);
      next = page.later;
      expect(pages.length).toBeLessThan(5);
    }
    expect(pages.map((p) => p.types.length)).toEqual([
      MAX_TIMELINE_EVENTS,
      recorded.length - MAX_TIMELINE_EVENTS,
    ]);
    expect(pages.flatMap((p) => p.types)).toEqual(recorded);
    // A later page says so, and leads back to the start of the story.
    expect(pages[1]?.html).toContain(`href="/console/requests/${id}"`);
    expect(pages[1]?.html).not.toContain("Later events are not shown");
  });

  it("refuses a cursor it did not hand out for this request with a clear 400", async () => {
    const other = await createRequest(t, S3_READ);
    const [foreign] = await allEvents(t, { request_id: other.id });
    const [own] = await allEvents(t, { request_id: id });
    const ownId = own?.id as string;
    const afterEnd = where === "Redis" ? "99999999999999-0" : "99999999";
    for (const after of [
      "abc",
      "-1",
      "0x10",
      "007",
      `${ownId}0000000000000000000000000`,
      foreign?.id as string,
      afterEnd,
      where === "Redis" ? "17" : "1768467600000-3",
    ]) {
      const page = await timelinePage(
        dana,
        `/console/requests/${id}?after=${encodeURIComponent(after)}`,
      );
      expect(page.status, after).toBe(400);
      expect(page.html, after).toContain("validation_failed");
    }
    // A repeated parameter is not a cursor either.
    const twice = await timelinePage(dana, `/console/requests/${id}?after=${ownId}&after=${ownId}`);
    expect(twice.status).toBe(400);
  });
});
