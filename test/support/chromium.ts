import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";
import type { RunningServer } from "../../src/server.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "./harness.js";

/** Debian's chromium, driven by playwright-core. */
export const CHROMIUM = "/usr/bin/chromium";

/** Browser tests run where Chromium is installed, and always in CI (where a missing one fails them). */
export const RUN_BROWSER_TESTS = existsSync(CHROMIUM) || process.env.CI !== undefined;

/** Headless Chromium with a fresh profile, kept off the network. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
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
}

/** A test writ served over a real socket, as `writ serve` serves it, and Chromium to drive it. */
export interface ServedWritInBrowser {
  readonly t: TestWrit;
  /** The served writ's base URL. */
  readonly base: string;
  readonly browser: Browser;
  close(): Promise<void>;
}

/**
 * Starts a test writ, serves it (the security headers are set on Node's
 * response there, not by `app.request()`) and launches Chromium.
 */
export async function servedWritInBrowser(
  overrides: Record<string, unknown> = {},
): Promise<ServedWritInBrowser> {
  const t = await startTestWrit(overrides);
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    // stop() closes the writ too: then only its data directory is left to remove.
    if (server !== undefined) {
      await server.stop();
      await rm(t.dataDir, { recursive: true, force: true });
    } else await t.close();
  };
  try {
    server = await serveTestWrit(t);
    browser = await launchChromium();
    return { t, base: server.url, browser, close };
  } catch (error) {
    await close();
    throw error;
  }
}
