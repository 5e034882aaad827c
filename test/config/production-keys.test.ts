import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyRing } from "../../src/adapters/jwt-keys.js";
import { hashKey } from "../../src/adapters/key-identity.js";
import { loadCheckpointKey } from "../../src/audit/checkpoint-key.js";
import { parseConfig } from "../../src/config/load.js";
import { reviewForProduction } from "../../src/config/production.js";

const IDENTITIES = {
  agents: [{ id: "a", key_sha256: hashKey("a"), owner: "o" }],
  reviewers: [{ id: "r", key_sha256: hashKey("r"), groups: ["g"] }],
  auditors: [{ id: "d", key_sha256: hashKey("d") }],
};

let dir: string;
let jwtFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-production-keys-"));
  jwtFile = join(dir, "ring", "jwt.json");
  await createKeyRing(jwtFile, "EdDSA");
  await chmod(jwtFile, 0o600);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The production review of an otherwise acceptable configuration. */
async function refusalsFor(dataDir: string, audit: Record<string, unknown> = {}) {
  const config = parseConfig({
    data_dir: dataDir,
    jwt: { keys_file: jwtFile },
    identities: IDENTITIES,
    redis: { url: "redis://127.0.0.1:6379" },
    audit,
  });
  return (await reviewForProduction(config, {}, "writ.yaml")).refusals;
}

describe.skipIf(process.platform === "win32")("the audit checkpoint key in production", () => {
  it("refuses a checkpoint key its group or others can read, like the JWT key ring", async () => {
    const dataDir = join(dir, "replica-1");
    const file = join(dataDir, "keys", "checkpoint.json");
    await loadCheckpointKey(file, { create: true });
    expect(await refusalsFor(dataDir)).toEqual([]);

    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      await chmod(file, mode);
      const refusals = await refusalsFor(dataDir);
      expect(refusals, mode.toString(8)).toHaveLength(1);
      expect(refusals[0]).toEqual({
        key: "audit.checkpoint_key_file (default)",
        problem: `${file} holds the private key that signs audit checkpoints and other users can read or change it (mode ${mode.toString(8)})`,
        fix: `chmod 600 ${file}`,
      });
    }
    await chmod(file, 0o600);
    expect(await refusalsFor(dataDir)).toEqual([]);
  });

  it("checks a configured key file too, and refuses one that is not a file", async () => {
    const dataDir = join(dir, "replica-2");
    const file = join(dir, "secrets", "checkpoint.json");
    await loadCheckpointKey(file, { create: true });
    await chmod(file, 0o640);
    const refusals = await refusalsFor(dataDir, { checkpoint_key_file: file });
    expect(refusals.map((r) => [r.key, r.fix])).toEqual([
      ["audit.checkpoint_key_file", `chmod 600 ${file}`],
    ]);

    const folder = join(dir, "not-a-file");
    await mkdir(folder, { recursive: true });
    const notFile = await refusalsFor(dataDir, { checkpoint_key_file: folder });
    expect(notFile.map((r) => [r.key, r.problem])).toEqual([
      ["audit.checkpoint_key_file", `${folder} is not a file`],
    ]);
  });

  it("accepts a missing key: each replica creates its own, mode 0600", async () => {
    expect(await refusalsFor(join(dir, "replica-3"))).toEqual([]);
  });
});
