import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadKeyRing } from "../../src/adapters/jwt-keys.js";
import { EXIT } from "../../src/cli/command.js";
import { runCli } from "../../src/cli/main.js";
import { startWritCli } from "../support/cli.js";

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

describe("writ keys, run as a user runs it, on a ring that is missing or unusable", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-keys-bin-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the built CLI in `dir`, with no configuration in its environment. */
  const writ = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
    startWritCli(args, { PATH: process.env.PATH, ...env }, 30_000).done;

  it("says there is no ring and gives the init command for the place it looked", async () => {
    const file = join(dir, "nowhere", "jwt.json");
    const config = join(dir, "writ.json");
    await writeFile(config, JSON.stringify({ data_dir: join(dir, "data") }));
    const defaultRing = join(dir, "data", "keys", "jwt.json");
    for (const command of [["list"], ["stage"], ["activate"], ["rotate"]]) {
      const byFile = await writ(["keys", ...command, "--file", file]);
      expect(byFile.stderr).toBe(
        `writ keys ${command[0]}: there is no JWT key ring at ${file}; create one with \`writ keys init --file ${file}\`\n`,
      );
      expect(byFile.code).toBe(EXIT.failed);
      const byConfig = await writ(["keys", ...command], { WRIT_CONFIG: config });
      expect(byConfig.stderr).toBe(
        `writ keys ${command[0]}: there is no JWT key ring at ${defaultRing}; create one with \`writ keys init --config ${config}\`\n`,
      );
      expect(byConfig.code).toBe(EXIT.failed);
    }
    // The command it names does create the ring the others looked for.
    expect((await writ(["keys", "init", "--config", config])).code).toBe(EXIT.ok);
    expect((await writ(["keys", "list"], { WRIT_CONFIG: config })).code).toBe(EXIT.ok);
  });

  it("names a directory or a file in the way, never with Node's raw error", async () => {
    const blocker = join(dir, "plain-file");
    await writeFile(blocker, "not a directory");
    for (const command of ["list", "stage", "activate", "rotate"]) {
      const onDir = await writ(["keys", command, "--file", dir]);
      expect(onDir.stderr).toBe(
        `writ keys ${command}: ${dir} is a directory, not a JWT key ring; give the ring file with --file or jwt.keys_file\n`,
      );
      expect(onDir.code).toBe(EXIT.failed);
      const under = await writ(["keys", command, "--file", join(blocker, "jwt.json")]);
      expect(under.stderr).toMatch(
        /there is no JWT key ring at .*; create one with `writ keys init/,
      );
      expect(under.code).toBe(EXIT.failed);
    }
    const init = await writ(["keys", "init", "--file", join(blocker, "keys", "jwt.json")]);
    expect(init.stderr).toBe(
      `writ keys init: cannot create ${join(blocker, "keys", "jwt.json")}: a part of its path is not a directory\n`,
    );
    expect(init.code).toBe(EXIT.failed);
  });

  it("refuses a corrupt ring before listing or changing it, as writ serve would", async () => {
    const file = join(dir, "jwt.json");
    expect((await writ(["keys", "init", "--file", file])).code).toBe(EXIT.ok);
    const ring = JSON.parse(await readFile(file, "utf8")) as {
      keys: { alg?: string; private_jwk?: unknown }[];
    };
    const good = ring.keys[0];
    const corruptions: [string, unknown][] = [
      ["an entry without its key", { ...ring, keys: [{ ...good, private_jwk: undefined }] }],
      ["an entry without its algorithm", { ...ring, keys: [{ ...good, alg: undefined }] }],
      ["an active key it does not contain", { ...ring, active: "gone" }],
    ];
    for (const [what, corrupt] of corruptions) {
      const text = JSON.stringify(corrupt);
      await writeFile(file, text);
      for (const command of ["list", "stage", "rotate"]) {
        const result = await writ(["keys", command, "--file", file]);
        expect(result.code, `${command}: ${what}`).toBe(EXIT.failed);
        expect(result.stderr, `${command}: ${what}`).toMatch(
          new RegExp(`^writ keys ${command}: .*${file}|key .* is not`),
        );
        expect(result.stdout, `${command}: ${what}`).toBe("");
        expect(result.stderr).not.toMatch(/undefined|Invalid or unsupported/);
        expect(await readFile(file, "utf8"), `${command} left the file alone`).toBe(text);
      }
    }
  });
});
