import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createKeyRing } from "../../src/adapters/jwt-keys.js";
import { generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { REPO_POLICIES } from "./harness.js";

/** Principals and signing keys shared by every replica of one test deployment. */
export interface ProductionSetup {
  readonly keysFile: string;
  /** Plain keys by principal id. */
  readonly keys: Record<string, string>;
  /** The plain key of a configured principal; throws for an unknown id. */
  readonly key: (id: string) => string;
  /**
   * Writes `<dir>/<name>.json`: the shared configuration with its own data dir
   * `<dir>/<name>` (a replica on its own host), `raw` merged over the top level.
   */
  writeConfig(name: string, raw?: Record<string, unknown>): Promise<string>;
}

/**
 * A production-shaped deployment in `dir`: the demo people and agent with fresh
 * keys (plus `limited-agent`, allowed 2 requests at once and then 1 a minute;
 * reviewers dave and erin besides the demo ones), a JWT key ring made as
 * `writ keys init` makes it, and metrics on a free loopback port.
 */
export async function createProductionSetup(
  dir: string,
  options: { createKeys?: boolean } = {},
): Promise<ProductionSetup> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys: Record<string, string> = {};
  const keyFor = (id: string, kind: Parameters<typeof generateKey>[0]) => {
    keys[id] = generateKey(kind);
    return hashKey(keys[id]);
  };
  const keysFile = join(dir, "keys", "jwt.json");
  if (options.createKeys ?? true) await createKeyRing(keysFile, "EdDSA");
  const base = {
    policies: { dir: REPO_POLICIES, watch: false },
    jwt: { keys_file: keysFile },
    server: { port: 0, shutdown_grace_seconds: 10 },
    metrics: { enabled: true, port: 0 },
    rate_limits: {
      requests_per_minute_per_agent: 1_000_000,
      burst: 100_000,
      agents: { "limited-agent": { requests_per_minute: 1, burst: 2 } },
      // Exactly-once tests replay one token a thousand times at once.
      refusals_per_minute_per_resource_server: 1_000_000,
      refusal_burst: 100_000,
    },
    identities: {
      // As production should: each agent says whom it may act for (nobody here).
      agents: ["report-agent", "limited-agent"].map((id) => ({
        id,
        owner: "alice",
        acts_for: [],
        key_sha256: keyFor(id, "agent"),
      })),
      reviewers: ["alice", "bob", "carol", "dave", "erin"].map((id) => ({
        id,
        groups: ["data-owners"],
        key_sha256: keyFor(id, "reviewer"),
      })),
      auditors: [{ id: "dana", key_sha256: keyFor("dana", "auditor") }],
      resource_servers: [
        {
          id: "billing-api",
          audience: "billing-api",
          key_sha256: keyFor("billing-api", "resource_server"),
        },
      ],
    },
  };
  return {
    keysFile,
    keys,
    key(id) {
      const found = keys[id];
      if (found === undefined) throw new TypeError(`no key for ${id}`);
      return found;
    },
    async writeConfig(name, raw = {}) {
      const path = join(dir, `${name}.json`);
      const config = { ...base, data_dir: join(dir, name), ...raw };
      await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 });
      return path;
    },
  };
}

/** One configuration file, `<dir>/writ.json`, over data dir `<dir>/writ`. */
export async function writeProductionConfig(
  dir: string,
  raw: Record<string, unknown> = {},
  options: { createKeys?: boolean } = {},
): Promise<{ configPath: string; keysFile: string; keys: Record<string, string> }> {
  const setup = await createProductionSetup(dir, options);
  return {
    configPath: await setup.writeConfig("writ", raw),
    keysFile: setup.keysFile,
    keys: setup.keys,
  };
}
