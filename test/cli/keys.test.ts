import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadKeyRing } from "../../src/adapters/jwt-keys.js";
import { EXIT } from "../../src/cli/command.js";
import { runCli } from "../../src/cli/main.js";

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env,
    stderrIsTty: false,
  });
  return { code, stdout, stderr };
}

describe("writ keys", () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-keys-cli-"));
    file = join(dir, "keys", "jwt.json");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("init creates a private key ring once and never replaces it", async () => {
    const first = await cli(["keys", "init", "--file", file, "--json"]);
    expect(first.code).toBe(EXIT.ok);
    const { kid, alg } = JSON.parse(first.stdout) as { kid: string; alg: string };
    expect(alg).toBe("EdDSA");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await loadKeyRing(file)).active.kid).toBe(kid);
    // No private material on stdout.
    expect(first.stdout).not.toMatch(/"d"|private/);

    const again = await cli(["keys", "init", "--file", file]);
    expect(again.code).toBe(EXIT.failed);
    expect(again.stderr).toMatch(/already exists; rotate/);
    expect((await loadKeyRing(file)).active.kid).toBe(kid);
  });

  it("finds the ring from the configuration (jwt.keys_file, algorithm)", async () => {
    const config = join(dir, "writ.json");
    await writeFile(config, JSON.stringify({ jwt: { algorithm: "ES256", keys_file: file } }));
    const made = await cli(["keys", "init", "--json"], { WRIT_CONFIG: config });
    expect(made.code).toBe(EXIT.ok);
    expect(JSON.parse(made.stdout)).toMatchObject({ file, alg: "ES256" });
  });

  it("stage then activate rotates without a moment where a replica lacks the signing key", async () => {
    await cli(["keys", "init", "--file", file]);
    const before = await loadKeyRing(file);
    const staged = JSON.parse((await cli(["keys", "stage", "--file", file, "--json"])).stdout) as {
      kid: string;
    };
    // Staged: published and verifying everywhere, but the old key still signs.
    const mid = await loadKeyRing(file);
    expect(mid.active.kid).toBe(before.active.kid);
    expect(mid.byKid(staged.kid)).toBeDefined();
    expect(mid.jwks().keys.map((k) => k.kid)).toContain(staged.kid);

    const activated = await cli(["keys", "activate", "--file", file]);
    expect(activated.code).toBe(EXIT.ok);
    const after = await loadKeyRing(file);
    expect(after.active.kid).toBe(staged.kid);
    // The retired key still verifies what it signed.
    expect(after.byKid(before.active.kid)).toBeDefined();

    const list = JSON.parse((await cli(["keys", "list", "--file", file, "--json"])).stdout) as {
      keys: { kid: string; state: string }[];
    };
    expect(list.keys.map((k) => [k.kid, k.state])).toEqual([
      [staged.kid, "active"],
      [before.active.kid, "retired"],
    ]);
    expect(JSON.stringify(list)).not.toMatch(/"d"/);
  });

  it("rotate does both steps; activate without a staged key fails clearly", async () => {
    await cli(["keys", "init", "--file", file]);
    const before = (await loadKeyRing(file)).active.kid;
    expect((await cli(["keys", "rotate", "--file", file])).code).toBe(EXIT.ok);
    expect((await loadKeyRing(file)).active.kid).not.toBe(before);
    const none = await cli(["keys", "activate", "--file", file]);
    expect(none.code).toBe(EXIT.failed);
    expect(none.stderr).toMatch(/no staged key; run `writ keys stage` first/);
    const unknown = await cli(["keys", "activate", "nope", "--file", file]);
    expect(unknown.stderr).toMatch(/no staged key nope/);
  });

  it("rejects bad input with a usage error and leaves the file alone", async () => {
    await cli(["keys", "init", "--file", file]);
    const text = await readFile(file, "utf8");
    for (const args of [
      ["keys", "init", "--file", join(dir, "other.json"), "--algorithm", "none"],
      ["keys", "activate", "--file", file, "--keep-retired-seconds", "5"],
      ["keys", "activate", "--file", file, "--keep-retired-seconds", "1e9"],
      ["keys", "activate", "a", "b", "--file", file],
      ["keys", "rotate", "--file", file, "--bogus"],
      ["keys", "list", "--file"],
    ]) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(EXIT.usage);
    }
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("fails on a file that is not a key ring, without echoing it", async () => {
    await writeFile(file.replace("keys/jwt.json", "bad.json"), '{"secret":"hunter2"}');
    const result = await cli(["keys", "list", "--file", join(dir, "bad.json")]);
    expect(result.code).toBe(EXIT.failed);
    expect(result.stderr).toMatch(/is not a writ JWT key file/);
    expect(result.stderr).not.toContain("hunter2");
  });
});

describe("writ keygen --kind metrics", () => {
  it("makes a scrape token and the hash for metrics.token_sha256", async () => {
    const { code, stdout } = await cli(["keygen", "--kind", "metrics", "--json"]);
    expect(code).toBe(EXIT.ok);
    const { key, key_sha256 } = JSON.parse(stdout) as { key: string; key_sha256: string };
    expect(key).toMatch(/^writ_metrics_[A-Za-z0-9_-]{43}$/);
    expect(key_sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
