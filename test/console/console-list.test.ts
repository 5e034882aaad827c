import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allRequests, createRequest, keyOf, S3_READ } from "../support/api.js";
import { extraIdentities } from "../support/extra-identities.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";
import { ConsoleClient } from "./console-client.js";

/** The console shows 50 requests a page. */
const PAGE_SIZE = 50;

let t: TestWrit;
let dana: ConsoleClient;
const etlIds: string[] = [];
const reportIds: string[] = [];

beforeAll(async () => {
  const extra = extraIdentities({ agents: [{ id: "etl-agent", owner: "bob" }] });
  t = await startTestWrit(extra.overrides);
  Object.assign(t.keys, extra.keys);
  // More than a page, from two agents, a second apart so that newest-first is visible.
  for (let i = 0; i < PAGE_SIZE + 5; i++) {
    t.clock.advance(1);
    const etl = i % 20 === 0;
    const { id } = await createRequest(t, S3_READ, keyOf(t, etl ? "etl-agent" : "report-agent"));
    (etl ? etlIds : reportIds).push(id);
  }
  dana = new ConsoleClient(t);
  expect((await dana.signIn(keyOf(t, "dana"))).status).toBe(303);
});

afterAll(async () => {
  await t.close();
});

interface ListPage {
  ids: string[];
  /** The "Older »" link, unescaped, if the page has one. */
  older: string | undefined;
  newest: boolean;
  html: string;
}

async function listPage(path: string): Promise<ListPage> {
  const res = await dana.get(path);
  expect(res.status, path).toBe(200);
  const html = await res.text();
  const ids = [...html.matchAll(/href="\/console\/requests\/(req_[A-Za-z0-9_-]{22})"/g)].map(
    (m) => m[1] as string,
  );
  const older = /href="(\/console\/requests\?[^"]*)">Older »<\/a>/.exec(html)?.[1];
  return {
    ids,
    older: older?.replaceAll("&amp;", "&"),
    newest: html.includes(">« Newest</a>"),
    html,
  };
}

/** Follows "Older »" from `path` to the last page; every page's ids, in order. */
async function walk(path: string): Promise<ListPage[]> {
  const pages: ListPage[] = [];
  let next: string | undefined = path;
  while (next !== undefined) {
    const page = await listPage(next);
    pages.push(page);
    next = page.older;
    expect(pages.length).toBeLessThan(10);
  }
  return pages;
}

describe("console requests list", () => {
  it("filters by agent, and keeps the filter in the form", async () => {
    const page = await listPage("/console/requests?agent=etl-agent");
    expect(page.ids).toEqual([...etlIds].reverse());
    expect(page.older).toBeUndefined();
    expect(page.html).toContain('name="agent" value="etl-agent"');
    expect(page.html).toContain("etl-agent <span");
    expect(page.html).not.toContain("report-agent <span");

    const nobody = await listPage("/console/requests?agent=no-such-agent");
    expect(nobody.ids).toEqual([]);
    expect(nobody.html).toContain("No requests match.");
  });

  it("pages through every request once, newest first, following the Older link", async () => {
    const pages = await walk("/console/requests");
    expect(pages.map((p) => p.ids.length)).toEqual([PAGE_SIZE, 5]);
    expect(pages.map((p) => p.newest)).toEqual([false, true]);
    const seen = pages.flatMap((p) => p.ids);
    expect(new Set(seen).size).toBe(seen.length);
    // Exactly what the API lists, in the same order.
    expect(seen).toEqual((await allRequests(t)).map((r) => r.id));
    expect(seen.sort()).toEqual([...etlIds, ...reportIds].sort());
  });

  it("pages within a filter: the Older link carries it", async () => {
    const pages = await walk("/console/requests?agent=report-agent&status=approved");
    expect(pages.map((p) => p.ids.length)).toEqual([PAGE_SIZE, reportIds.length - PAGE_SIZE]);
    expect(pages[0]?.older).toMatch(/agent=report-agent/);
    expect(pages[0]?.older).toMatch(/status=approved/);
    expect(pages.flatMap((p) => p.ids)).toEqual([...reportIds].reverse());
  });
});
