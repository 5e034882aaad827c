import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:tls";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf } from "../support/api.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { createTestPki } from "../support/tls.js";

// Debian's chromium, driven by playwright-core, as in browser.test.ts.
const CHROMIUM = "/usr/bin/chromium";
const RUN = existsSync(CHROMIUM) || process.env.CI !== undefined;

let t: TestWrit;
let server: RunningServer | undefined;
let proxy: Server | undefined;
let otherSite: HttpServer | undefined;
const sockets = new Set<Socket>();
let pkiDir = "";
let base = "";
let browser: Browser;

/**
 * A TLS-terminating proxy in front of writ that passes the bytes through
 * unchanged: the Host header the browser sent, and no X-Forwarded-Proto, as a
 * plain nginx `proxy_pass` with `proxy_set_header Host $host` does.
 */
async function startTlsProxy(targetPort: number, key: Buffer, cert: Buffer): Promise<number> {
  proxy = createServer({ key, cert }, (client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listening = proxy;
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  return (listening.address() as { port: number }).port;
}

beforeAll(async () => {
  if (!RUN) return;
  // As under `writ serve`: secure cookies, decided by configuration.
  t = await startTestWrit({ console: { secure_cookies: true } });
  server = await serveTestWrit(t);
  pkiDir = await mkdtemp(join(tmpdir(), "writ-console-pki-"));
  const pki = await createTestPki(pkiDir);
  const port = await startTlsProxy(
    Number(new URL(server.url).port),
    await readFile(pki.serverKeyFile),
    await readFile(pki.serverCertFile),
  );
  base = `https://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const socket of sockets) socket.destroy();
  for (const listening of [proxy, otherSite]) {
    await new Promise<void>((resolve) =>
      listening === undefined ? resolve() : listening.close(() => resolve()),
    );
  }
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
    await page.waitForURL(/done=approved/);

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
