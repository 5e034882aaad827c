import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_TIMELINE_EVENTS } from "../../src/service/request-timeline.js";
import {
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  keyOf,
  NO_REFUSAL_LIMIT,
  S3_READ,
} from "../support/api.js";
import {
  RUN_BROWSER_TESTS as RUN,
  type ServedWritInBrowser,
  servedWritInBrowser,
} from "../support/chromium.js";
import type { TestWrit } from "../support/harness.js";

// Debian's chromium, driven by playwright-core: .ci/run installs it.
const ARTIFACTS = resolve(import.meta.dirname, "../../test-artifacts/console");

let served: ServedWritInBrowser | undefined;
let t: TestWrit;
let base = "";
let browser: Browser;
const problems: string[] = [];

beforeAll(async () => {
  if (!RUN) return;
  served = await servedWritInBrowser(NO_REFUSAL_LIMIT);
  ({ t, base, browser } = served);
  await mkdir(ARTIFACTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await served?.close();
});

/** A fresh browser context (its own cookies) on the console; CSP violations are recorded. */
async function openPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    // The browser's own favicon probe 404s; everything else is the page's.
    if (msg.type() === "error" && !msg.location().url.endsWith("/favicon.ico")) {
      problems.push(msg.text());
    }
  });
  page.on("pageerror", (error) => problems.push(error.message));
  return page;
}

async function signIn(page: Page, id: string) {
  const login = await page.goto(`${base}/console`);
  expect(new URL(page.url()).pathname).toBe("/console/login");
  // The page the browser renders carries the server's headers and the console's policy.
  const headers = login?.headers() ?? {};
  expect(headers["x-frame-options"]).toBe("SAMEORIGIN");
  expect(headers["cross-origin-opener-policy"]).toBe("same-origin");
  expect(headers["content-security-policy"]).toContain("default-src 'none'");
  await page.fill('input[name="key"]', keyOf(t, id));
  await page.click('button[type="submit"]');
  await page.waitForURL(`${base}/console/requests`);
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

describe.skipIf(!RUN)("the console in a browser", () => {
  it("signs in, filters, opens a timeline, approves, revokes, and shows integrity", async () => {
    // Some hours of history for the chart: credentials issued, and requests denied.
    for (let hour = 0; hour < 6; hour++) {
      for (let i = 0; i < (hour % 3) + 1; i++) {
        await collectToken(t, (await createRequest(t, S3_READ)).id);
      }
      if (hour % 2 === 1) {
        const refused = await createRequest(t, CUSTOMERS_EXPORT);
        await t.call("POST", `/v1/requests/${refused.id}/deny`, {
          key: keyOf(t, "bob"),
          body: { reason: "not this quarter" },
        });
      }
      t.clock.advance(3600);
    }
    const pending = await createRequest(t, CUSTOMERS_EXPORT);

    const login = await openPage();
    await login.goto(`${base}/console/login`);
    await shot(login, "login");

    const bob = await openPage();
    await signIn(bob, "bob");
    expect(await bob.locator("table tbody tr").count()).toBe(16);
    expect(await bob.locator("figure .legend").textContent()).toContain("issued: 12");
    await shot(bob, "requests");

    await bob.selectOption('select[name="status"]', "pending");
    await bob.click('form.filters button[type="submit"]');
    await bob.waitForURL(/status=pending/);
    expect(await bob.locator("table tbody tr").count()).toBe(1);
    await bob.click(`a[href="/console/requests/${pending.id}"]`);
    await bob.waitForURL(`${base}/console/requests/${pending.id}`);
    expect(await bob.locator("ol.timeline li").count()).toBeGreaterThanOrEqual(2);
    await shot(bob, "request-pending");

    await bob.fill('form[action$="/approve"] textarea[name="comment"]', "checked the ticket");
    await bob.click('form[action$="/approve"] button[type="submit"]');
    await bob.getByText("You approved this request at").waitFor();
    expect(await bob.locator("h1 .status").textContent()).toBe("pending");

    const carol = await openPage();
    await signIn(carol, "carol");
    await carol.click('a[href="/console/pending"]');
    await shot(carol, "pending");
    await carol.click(
      `form[action="/console/requests/${pending.id}/approve"] button[type="submit"]`,
    );
    await carol.waitForURL(`${base}/console/requests/${pending.id}`);
    expect(await carol.locator(".notice").textContent()).toContain("You approved this request");
    expect(await carol.locator("h1 .status").textContent()).toBe("approved");
    expect(await carol.locator("ol.timeline").textContent()).toContain("Approved by bob");
    await shot(carol, "request-approved");

    // Approved, not yet collected: the kill switch stops it.
    await carol.fill('form[action$="/revoke"] textarea[name="reason"]', "agent under review");
    await carol.click('form[action$="/revoke"] button[type="submit"]');
    await carol.getByText("You revoked this request at").waitFor();
    expect(await carol.locator("h1 .status").textContent()).toBe("revoked");
    expect(await carol.locator("ol.timeline").textContent()).toContain("Revoked by carol");
    expect(await carol.locator('form[action$="/revoke"]').count()).toBe(0);
    await shot(carol, "request-revoked");

    const dana = await openPage();
    await signIn(dana, "dana");
    await dana.click('a[href="/console/integrity"]');
    await dana.click('form[action="/console/integrity/verify"] button[type="submit"]');
    await dana.waitForURL(`${base}/console/integrity`);
    expect(await dana.locator(".ok").textContent()).toMatch(/Verified: \d+ entries/);
    await shot(dana, "integrity");

    // The strict Content-Security-Policy broke nothing on any page.
    expect(problems).toEqual([]);
  });

  it("follows a long timeline to its later events", async () => {
    const issued = await createRequest(t, S3_READ);
    const token = await collectToken(t, issued.id);
    for (let i = 0; i <= MAX_TIMELINE_EVENTS; i++) {
      await t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
    }
    await t.call("POST", `/v1/requests/${issued.id}/complete`, { key: keyOf(t, "report-agent") });

    const dana = await openPage();
    await signIn(dana, "dana");
    await dana.goto(`${base}/console/requests/${issued.id}`);
    expect(await dana.locator("ol.timeline li").count()).toBe(MAX_TIMELINE_EVENTS);
    await dana.click("text=Later events");
    await dana.waitForURL(/\?after=/);
    expect(await dana.locator("ol.timeline").textContent()).toContain("credential.completed");
    await dana.click("text=« From the start");
    await dana.waitForURL(`${base}/console/requests/${issued.id}`);
    expect(problems).toEqual([]);
  });
});
