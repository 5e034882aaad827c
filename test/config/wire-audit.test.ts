import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadOrCreateKeyRing } from "../../src/adapters/jwt-keys.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { assembleWrit } from "../../src/config/wire.js";
import { silentLogger } from "../../src/ports/logger.js";
import { ManualClock, REPO_POLICIES } from "../support/harness.js";

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-wire-audit-"));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const config = (audit: Record<string, unknown> = {}) =>
  parseConfig({ data_dir: dataDir, policies: { dir: REPO_POLICIES, watch: false }, audit });

describe("the audit checkpoint key at start", () => {
  it("is never generated when the caller forbids it (production)", async () => {
    await expect(
      assembleWrit(config(), {
        clock: new ManualClock(),
        logger: silentLogger,
        createCheckpointKey: false,
      }),
    ).rejects.toThrow(ConfigError);
  });

  it("is never a JWT signing key: neither the JWT key file nor a key from it", async () => {
    const jwtFile = join(dataDir, "keys", "jwt.json");
    const ring = await loadOrCreateKeyRing(jwtFile, "EdDSA");
    await expect(
      assembleWrit(config({ checkpoint_key_file: jwtFile }), {
        clock: new ManualClock(),
        logger: silentLogger,
      }),
    ).rejects.toThrow(/must not be the JWT key file/);

    // The JWT private key copied into a checkpoint key file.
    const stored = JSON.parse(await readFile(jwtFile, "utf8")) as {
      keys: { kid: string; private_jwk: unknown }[];
    };
    const copy = join(dataDir, "keys", "copied.json");
    await writeFile(
      copy,
      JSON.stringify({
        kid: ring.active.kid,
        alg: "EdDSA",
        private_jwk: stored.keys[0]?.private_jwk,
      }),
    );
    await expect(
      assembleWrit(config({ checkpoint_key_file: copy }), {
        clock: new ManualClock(),
        logger: silentLogger,
      }),
    ).rejects.toThrow(/also a JWT signing key/);
  });
});
