import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  RUN_BROWSER_TESTS as RUN,
  type ServedWritInBrowser,
  servedWritInBrowser,
} from "../support/chromium.js";

let served: ServedWritInBrowser | undefined;
let base = "";
let browser: Browser;

beforeAll(async () => {
  if (!RUN) return;
  served = await servedWritInBrowser();
  ({ base, browser } = served);
}, 60_000);

afterAll(async () => {
  await served?.close();
});

describe.skipIf(!RUN)("the API docs page in a browser", () => {
  it("renders the operations from writ's own files, under its policy, and tries one", async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const requested: string[] = [];
    const problems: string[] = [];
    page.on("request", (request) => requested.push(request.url()));
    page.on("console", (msg) => {
      // Chromium reports each Content-Security-Policy violation as a console error.
      if (msg.type() === "error" && !msg.location().url.endsWith("/favicon.ico")) {
        problems.push(msg.text());
      }
    });
    page.on("pageerror", (error) => problems.push(error.message));

    const res = await page.goto(`${base}/docs`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("default-src 'none'");

    const create = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/requests"]');
    await create.waitFor({ timeout: 15_000 });
    expect(await page.locator(".opblock").count()).toBeGreaterThan(10);

    // "Try it out" calls the API from the page: the policy lets it reach writ.
    await page.locator('.opblock-get .opblock-summary-path[data-path="/healthz"]').click();
    await page.getByRole("button", { name: "Try it out" }).click();
    await page.getByRole("button", { name: "Execute" }).click();
    const status = page.locator(".live-responses-table tbody .response-col_status");
    await status.waitFor();
    expect(await status.textContent()).toContain("200");

    // Nothing the page loaded or called came from anywhere but writ.
    const origin = new URL(base).origin;
    const elsewhere = requested.filter(
      (url) => !url.startsWith("data:") && new URL(url).origin !== origin,
    );
    expect(elsewhere).toEqual([]);
    expect(requested).toContain(`${origin}/openapi.json`);
    expect(problems).toEqual([]);
    await context.close();
  });
});
