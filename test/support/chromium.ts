import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

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
