import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf } from "../support/api.js";
import { launchChromium, RUN_BROWSER_TESTS as RUN } from "../support/chromium.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { createTestPki } from "../support/tls.js";

let t: TestWrit;
let server: RunningServer | undefined;
let proxy: TcpProxy | undefined;
let otherSite: HttpServer | undefined;
let pkiDir = "";
let base = "";
let browser: Browser;

beforeAll(async () => {
  if (!RUN) return;
  // As under `writ serve`: secure cookies, decided by configuration.
  t = await startTestWrit({ console: { secure_cookies: true } });
  server = await serveTestWrit(t);
  pkiDir = await mkdtemp(join(tmpdir(), "writ-console-pki-"));
  const pki = await createTestPki(pkiDir);
  // Ends TLS and passes the bytes on unchanged: the Host header the browser
  // sent, and no X-Forwarded-Proto, as a plain nginx `proxy_pass` with
  // `proxy_set_header Host $host` does.
  proxy = await startTcpProxy(Number(new URL(server.url).port), {
    key: await readFile(pki.serverKeyFile),
    cert: await readFile(pki.serverCertFile),
  });
  base = `https://127.0.0.1:${proxy.port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  const site = otherSite;
  if (site !== undefined) await new Promise<void>((resolve) => site.close(() => resolve()));
  if (server !== undefined) {
    await server.stop();
    await rm(t.dataDir, { recursive: true, force: true });
  } else await t?.close();
  if (pkiDir !== "") await rm(pkiDir, { recursive: true, force: true });
});

async function openPage(): Promise<Page> {
  // The proxy's certificate comes from a throwaway CA the browser does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  return context.newPage();
}

/** Serves, on another site (localhost, not 127.0.0.1), a page that links to `target`. */
async function pageLinkingTo(target: string): Promise<string> {
  otherSite = createHttpServer((_request, response) => {
    response.setHeader("content-type", "text/html; charset=utf-8");
    response.end(`<!doctype html><a id="review" href="${target}">Review in writ</a>`);
  });
  const listening = otherSite;
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  return `http://localhost:${(listening.address() as { port: number }).port}/`;
}

async function signIn(page: Page, id: string) {
  await page.goto(`${base}/console/login`);
  await page.fill('input[name="key"]', keyOf(t, id));
  await page.click('button[type="submit"]');
  await page.waitForLoadState();
}

describe.skipIf(!RUN)("the console in a browser, across sites", () => {
  it("signs in, approves and signs out over HTTPS without X-Forwarded-Proto", async () => {
    const pending = await createRequest(t, CUSTOMERS_EXPORT);
    const page = await openPage();
    await signIn(page, "bob");
    expect(await page.locator("main").textContent()).not.toContain("did not come from");
    expect(new URL(page.url()).pathname).toBe("/console/requests");
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === "__Host-writ_console")?.secure).toBe(true);

    await page.goto(`${base}/console/requests/${pending.id}`);
    await page.click('form[action$="/approve"] button[type="submit"]');
    await page.getByText("You approved this request at").waitFor();

    await page.click('form[action="/console/logout"] button[type="submit"]');
    await page.waitForURL(`${base}/console/login`);
    await page.goto(`${base}/console/requests`);
    expect(new URL(page.url()).pathname).toBe("/console/login");
  });

  it("opens a request linked from another site (Slack, Teams) for a signed-in reviewer", async () => {
    const pending = await createRequest(t, CUSTOMERS_EXPORT);
    const target = `${base}/console/requests/${pending.id}`;
    const chat = await pageLinkingTo(target);
    const page = await openPage();
    await signIn(page, "carol");
    await page.goto(chat);
    await page.click("#review");
    await page.waitForURL(target, { timeout: 10_000 });
    expect(await page.locator("h1").textContent()).toContain(pending.id);
    expect(await page.locator('form[action$="/approve"]').count()).toBe(1);

    // Signed out, the same link still ends at the sign-in form.
    const stranger = await openPage();
    await stranger.goto(chat);
    await stranger.click("#review");
    await stranger.waitForURL(`${base}/console/login`, { timeout: 10_000 });
  });
});
