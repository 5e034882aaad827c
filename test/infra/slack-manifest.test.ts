import { readdir, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// The shipped infra/slack/manifest.yaml against what src/notify/slack does:
// every scope it grants is one a Web API method writ calls needs, and the
// interactivity URL is the path writ serves.

const ROOT = resolve(import.meta.dirname, "../..");
const MANIFEST = resolve(ROOT, "infra/slack/manifest.yaml");
const SLACK = resolve(ROOT, "src/notify/slack");

/** The bot scopes each Web API method needs (Slack's method reference). */
const SCOPES_BY_METHOD: Record<string, readonly string[]> = {
  "chat.postMessage": ["chat:write"],
  "chat.postEphemeral": ["chat:write"],
  "chat.update": ["chat:write"],
  // Reading `profile.email` (slack.match_by_email) takes the second one too.
  "users.info": ["users:read", "users:read.email"],
  // Opened with an interaction's trigger_id: no scope.
  "views.open": [],
};

interface Manifest {
  oauth_config: { scopes: { bot: string[] } };
  settings: { interactivity: { is_enabled: boolean; request_url: string } };
}

async function methodsWritCalls(): Promise<Set<string>> {
  const methods = new Set<string>();
  for (const name of await readdir(SLACK)) {
    const text = await readFile(resolve(SLACK, name), "utf8");
    for (const [, group, method] of text.matchAll(/\bclient\.(\w+)\.(\w+)\(/g)) {
      methods.add(`${group}.${method}`);
    }
  }
  return methods;
}

describe("infra/slack/manifest.yaml", () => {
  it("grants exactly the bot scopes of the Web API methods writ calls", async () => {
    const manifest = parse(await readFile(MANIFEST, "utf8")) as Manifest;
    const needed = new Set<string>();
    for (const method of await methodsWritCalls()) {
      const scopes = SCOPES_BY_METHOD[method];
      expect(scopes, `the scopes ${method} needs`).toBeDefined();
      for (const scope of scopes ?? []) needed.add(scope);
    }
    expect(new Set(manifest.oauth_config.scopes.bot)).toEqual(needed);
  });

  it("sends interactions to the path writ serves", async () => {
    const manifest = parse(await readFile(MANIFEST, "utf8")) as Manifest;
    const receiver = await readFile(resolve(SLACK, "receiver.ts"), "utf8");
    const path = /mount<[^>]*>\([^)]*path = "([^"]+)"/.exec(receiver)?.[1];
    expect(path).toBe("/slack/events");
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
    expect(new URL(manifest.settings.interactivity.request_url).pathname).toBe(path);
  });
});
