import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonObject } from "../../src/domain/json.js";
import type { Agent } from "../../src/domain/principal.js";
import type { PolicyQuery } from "../../src/ports/policy.js";

/** The shipped demo policies. */
export const DEMO_POLICIES_DIR = fileURLToPath(new URL("../../policies", import.meta.url));

export const DEFAULTS = { ttlSeconds: 900, approvalTimeoutSeconds: 3600 } as const;

/** A fresh directory holding `files` (name → content); `remove()` deletes it. */
export async function tempPolicies(files: Record<string, string>): Promise<{
  dir: string;
  write(name: string, text: string): Promise<void>;
  remove(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "writ-policies-"));
  const write = (name: string, text: string) => writeFile(join(dir, name), text, "utf8");
  for (const [name, text] of Object.entries(files)) await write(name, text);
  return { dir, write, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function agent(attributes: Record<string, string> = {}, id = "agent-1"): Agent {
  return { kind: "agent", id, owner: "owner@example.com", attributes };
}

export function query(
  action: string,
  resource: string,
  context: JsonObject = {},
  who: Agent = agent(),
): PolicyQuery {
  return { agent: who, action, resource, context };
}
