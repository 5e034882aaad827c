import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/command.js";
import { runCli } from "../../src/cli/main.js";
import { writeProductionConfig } from "../support/production-config.js";
import { freePort, type RedisServer, startRedisServer } from "../support/redis.js";

// The refusals return before anything listens, so they run in-process.

async function serve(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(["serve", ...args], {
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

let dir: string;
let redis: RedisServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-serve-"));
  redis = await startRedisServer({ password: "s3cret-redis-pw" });
});
afterAll(async () => {
  await redis?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh production setup in its own directory, with `raw` merged in. */
async function setup(name: string, raw: Record<string, unknown> = {}, createKeys = true) {
  const sub = join(dir, name);
  return writeProductionConfig(sub, raw, { createKeys });
}

async function editConfig(path: string, edit: (config: Record<string, unknown>) => void) {
  const config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  edit(config);
  await writeFile(path, JSON.stringify(config));
}

describe("writ serve refuses to start, naming the key and the fix", () => {
  it("without a configuration file", async () => {
    const { code, stderr } = await serve([]);
    expect(code).toBe(EXIT.failed);
    expect(stderr).toMatch(
      /--config: no configuration file was given\.\n\s+Fix: pass --config <file> or set WRIT_CONFIG/,
    );
  });

  it("with a configuration error: every bad key named", async () => {
    const { configPath } = await setup("bad-keys");
    await editConfig(configPath, (c) => {
      c.requests = { collect_window_seconds: 1 };
      c.rate_limits = { burst: 0 };
      c.servre = {};
    });
    const { code, stderr } = await serve(["--config", configPath]);
    expect(code).toBe(EXIT.failed);
    expect(stderr).toMatch(/requests\.collect_window_seconds/);
    expect(stderr).toMatch(/rate_limits\.burst/);
    expect(stderr).toMatch(/servre/);
  });

  it("on the memory store, without keys, agents or auditors, all at once", async () => {
    const { configPath } = await setup("empty", { identities: {} }, false);
    const { code, stderr, stdout } = await serve(["--config", configPath]);
    expect(code).toBe(EXIT.failed);
    expect(stdout).toBe("");
    expect(stderr).toMatch(
      /store\.kind: the embedded memory store .*\n\s+Fix: set store\.kind: redis and redis\.url/,
    );
    expect(stderr).toMatch(
      /jwt\.keys_file: there is no JWT key ring .* writ serve never generates throwaway keys/,
    );
    expect(stderr).toMatch(/Fix: create it once with `writ keys init --config .*writ\.json`/);
    expect(stderr).toMatch(/identities\.agents: no agents are configured/);
    expect(stderr).toMatch(/identities\.auditors: no auditors are configured/);
  });

  it("with more worker processes than it supports", async () => {
    const tooMany = await setup("workers-many", { server: { port: 0, workers: 65 } });
    const refused = await serve(["--config", tooMany.configPath], { WRIT_REDIS_URL: redis.url });
    expect(refused.code).toBe(EXIT.failed);
    expect(refused.stderr).toMatch(/server\.workers/);
  });

  it("with a signing key file others can read, or of another algorithm", async () => {
    const { configPath, keysFile } = await setup("open-keys", {
      redis: { url: `redis://127.0.0.1:${redis.port}` },
    });
    await chmod(keysFile, 0o644);
    const open = await serve(["--config", configPath]);
    expect(open.stderr).toMatch(
      new RegExp(`jwt\\.keys_file: .*other users can read it.*\\n\\s+Fix: chmod 600 ${keysFile}`),
    );
    await chmod(keysFile, 0o600);
    await editConfig(configPath, (c) => {
      c.jwt = { keys_file: keysFile, algorithm: "ES256" };
    });
    const wrongAlg = await serve(["--config", configPath]);
    expect(wrongAlg.code).toBe(EXIT.failed);
    expect(wrongAlg.stderr).toMatch(/jwt\.algorithm: is ES256, but the active key .* is EdDSA/);
    await writeFile(keysFile, "{}", { mode: 0o600 });
    await editConfig(configPath, (c) => {
      c.jwt = { keys_file: keysFile };
    });
    const broken = await serve(["--config", configPath]);
    expect(broken.stderr).toMatch(/jwt\.keys_file: .* is not a usable key ring/);
  });

  it("with a password in the file, a missing secret or a bad WRIT_REDIS_URL, never echoing secrets", async () => {
    const { configPath } = await setup("secrets");
    await editConfig(configPath, (c) => {
      c.redis = { url: "redis://:hunter2@127.0.0.1:6379" };
    });
    const inFile = await serve(["--config", configPath]);
    expect(inFile.code).toBe(EXIT.failed);
    expect(inFile.stderr).toMatch(/redis\.url: holds a password; put it in redis\.password_file/);
    expect(inFile.stderr).not.toContain("hunter2");

    await editConfig(configPath, (c) => {
      c.redis = { url: "redis://127.0.0.1:6379", password_file: join(dir, "no-such-file") };
    });
    const missing = await serve(["--config", configPath]);
    expect(missing.stderr).toMatch(/redis\.password_file: cannot read .*ENOENT/);

    await editConfig(configPath, (c) => {
      c.redis = {};
    });
    const badEnv = await serve(["--config", configPath], {
      WRIT_REDIS_URL: "https://user:hunter2@example.com",
    });
    expect(badEnv.code).toBe(EXIT.failed);
    expect(badEnv.stderr).toMatch(/WRIT_REDIS_URL: expected a redis:\/\//);
    expect(badEnv.stderr).not.toContain("hunter2");
  });

  it("with a query or fragment in a Redis URL, where a password would be ignored, never echoing it", async () => {
    const { configPath } = await setup("url-query");
    await editConfig(configPath, (c) => {
      c.redis = { connect_timeout_seconds: 1 };
    });
    for (const url of [
      `redis://127.0.0.1:${redis.port}/0?password=hunter2`,
      `redis://127.0.0.1:${redis.port}#hunter2`,
    ]) {
      const refused = await serve(["--config", configPath], { WRIT_REDIS_URL: url });
      expect(refused.code, url).toBe(EXIT.failed);
      expect(refused.stderr, url).toMatch(/WRIT_REDIS_URL: has a query or fragment/);
      expect(refused.stderr + refused.stdout, url).not.toContain("hunter2");
    }
    await editConfig(configPath, (c) => {
      c.redis = { url: `redis://127.0.0.1:${redis.port}?password=hunter2` };
    });
    const inFile = await serve(["--config", configPath]);
    expect(inFile.code).toBe(EXIT.failed);
    expect(inFile.stderr).toMatch(/redis\.url: has a query or fragment/);
    expect(inFile.stderr).not.toContain("hunter2");
  });

  it("when Redis cannot be reached, or refuses the password, without printing it", async () => {
    const { configPath } = await setup("unreachable");
    const port = await freePort();
    await editConfig(configPath, (c) => {
      c.redis = { connect_timeout_seconds: 1 };
    });
    const nothing = await serve(["--config", configPath], {
      WRIT_REDIS_URL: `redis://127.0.0.1:${port}`,
    });
    expect(nothing.code).toBe(EXIT.failed);
    expect(nothing.stderr).toMatch(
      new RegExp(
        `WRIT_REDIS_URL: cannot reach Redis at redis://127\\.0\\.0\\.1:${port} within 1 s \\(ECONNREFUSED\\)`,
      ),
    );
    const wrongPassword = await serve(["--config", configPath], {
      WRIT_REDIS_URL: `redis://:not-the-password@127.0.0.1:${redis.port}`,
    });
    expect(wrongPassword.code).toBe(EXIT.failed);
    expect(wrongPassword.stderr).toMatch(
      /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ within 1 s: it refused writ's credentials \(WRONGPASS\)/,
    );
    expect(wrongPassword.stderr + wrongPassword.stdout).not.toContain("not-the-password");
  });

  it("when the policies do not load or a listener cannot bind, naming the key and the fix", async () => {
    const redisUrl = `redis://:s3cret-redis-pw@127.0.0.1:${redis.port}`;
    const missingDir = join(dir, "no-policies");
    const { configPath } = await setup("start-failures", {
      policies: { dir: missingDir, watch: false },
    });
    const missing = await serve(["--config", configPath], { WRIT_REDIS_URL: redisUrl });
    expect(missing.code).toBe(EXIT.failed);
    expect(missing.stderr).toMatch(
      /^writ serve refuses to start:\n {2}policies\.dir: cannot read policy directory .*ENOENT/,
    );
    expect(missing.stderr).toMatch(/Fix the policies \(`writ policy test` checks them\)/);

    const broken = join(dir, "broken-policies");
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, "bad.cedar"), "permit(principal, action, resource) when { x };\n");
    await editConfig(configPath, (c) => {
      c.policies = { dir: broken, watch: false };
    });
    const invalid = await serve(["--config", configPath], { WRIT_REDIS_URL: redisUrl });
    expect(invalid.code).toBe(EXIT.failed);
    expect(invalid.stderr).toMatch(/ {2}policies\.dir: .*bad\.cedar: line 1/);

    const port = await freePort();
    const taken: Server = createServer();
    await new Promise<void>((listening) => taken.listen(port, "127.0.0.1", listening));
    try {
      await editConfig(configPath, (c) => {
        delete c.policies;
        c.server = { port, shutdown_grace_seconds: 1 };
      });
      const busy = await serve(["--config", configPath], { WRIT_REDIS_URL: redisUrl });
      expect(busy.code).toBe(EXIT.failed);
      expect(busy.stderr).toContain(
        `server.port: 127.0.0.1:${port} is already in use (EADDRINUSE); stop what listens there, or set another server.port`,
      );
      await editConfig(configPath, (c) => {
        c.server = { port: 0 };
        c.metrics = { enabled: true, port };
      });
      const metricsBusy = await serve(["--config", configPath], { WRIT_REDIS_URL: redisUrl });
      expect(metricsBusy.code).toBe(EXIT.failed);
      expect(metricsBusy.stderr).toContain(`metrics.port: 127.0.0.1:${port} is already in use`);
    } finally {
      await new Promise((closed) => taken.close(closed));
    }
    await editConfig(configPath, (c) => {
      c.server = { port: 0, host: "no-such-host.invalid" };
    });
    const unresolved = await serve(["--config", configPath], { WRIT_REDIS_URL: redisUrl });
    expect(unresolved.code).toBe(EXIT.failed);
    expect(unresolved.stderr).toMatch(/server\.host: no-such-host\.invalid does not resolve \(E/);
  });

  it("on bad command lines", async () => {
    for (const args of [
      ["--port", "99999"],
      ["--port", "-1"],
      ["--port", "8x"],
      ["--nope"],
      ["extra"],
    ]) {
      const { code } = await serve(["--config", "writ.json", ...args]);
      expect(code, args.join(" ")).toBe(EXIT.usage);
    }
  });
});

describe("writ dev --redis-url", () => {
  it("refuses a malformed URL as a usage error, before starting anything", async () => {
    for (const url of ["http://127.0.0.1:6379", "redis://", "not a url", "redis://h/x/y"]) {
      let stderr = "";
      const code = await runCli(["dev", "--data-dir", join(dir, "dev"), "--redis-url", url], {
        stdout: () => {},
        stderr: (text) => {
          stderr += text;
        },
        env: {},
        stderrIsTty: false,
      });
      expect(code, url).toBe(EXIT.usage);
      expect(stderr).toMatch(/--redis-url: /);
    }
  });
});
