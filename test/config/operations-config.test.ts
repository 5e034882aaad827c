import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyRing } from "../../src/adapters/jwt-keys.js";
import { hashKey } from "../../src/adapters/key-identity.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { reviewForProduction } from "../../src/config/production.js";
import { resolveRedisSettings, storeKind } from "../../src/config/redis-settings.js";
import { consumeLimitFor, rateLimitFor } from "../../src/config/wire-operations.js";
import { writeSecretFile } from "../support/secret-file.js";

const HASH = hashKey("k");
const IDENTITIES = {
  agents: [{ id: "a", key_sha256: hashKey("a"), owner: "o", acts_for: [] }],
  reviewers: [{ id: "r", key_sha256: hashKey("r"), groups: ["g"] }],
  auditors: [{ id: "d", key_sha256: hashKey("d") }],
};

/** The error message of an invalid configuration. */
function invalid(raw: unknown): string {
  try {
    parseConfig(raw, "writ.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-ops-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const secretFile = (name: string, content: string, mode: number) =>
  writeSecretFile(dir, name, content, mode);

describe("configuration of the store, Redis, rate limits and metrics", () => {
  it("has safe defaults: memory store, limits on, metrics off", () => {
    const config = parseConfig({});
    expect(storeKind(config, {})).toBe("memory");
    expect(config.rate_limits).toEqual({
      requests_per_minute_per_agent: 600,
      burst: 100,
      agents: {},
      refusals_per_minute_per_resource_server: 60,
      refusal_burst: 100,
      resource_servers: {},
    });
    expect(config.metrics).toMatchObject({ enabled: false, host: "127.0.0.1", port: 9464 });
    expect(config.redis.key_prefix).toBe("writ");
  });

  it("picks Redis when an endpoint is configured or WRIT_REDIS_URL is set, unless told otherwise", () => {
    expect(storeKind(parseConfig({ redis: { url: "redis://r:6379" } }), {})).toBe("redis");
    expect(storeKind(parseConfig({}), { WRIT_REDIS_URL: "redis://r:6379" })).toBe("redis");
    expect(storeKind(parseConfig({ redis: { nodes: ["redis://a:1"] } }), {})).toBe("redis");
    expect(
      storeKind(parseConfig({ store: { kind: "memory" }, redis: { url: "redis://r" } }), {}),
    ).toBe("memory");
  });

  it("never accepts a password in the file, naming where it goes instead", () => {
    expect(invalid({ redis: { url: "redis://:hunter2@r:6379" } })).toMatch(
      /redis\.url: .*password_file or redis\.password_env/,
    );
    expect(invalid({ redis: { url: "redis://r", password: "hunter2" } })).toMatch(
      /redis\.password: a password is never written in the configuration file/,
    );
    // The message never echoes the secret.
    expect(invalid({ redis: { url: "redis://:hunter2@r:6379" } })).not.toContain("hunter2");
    expect(invalid({ redis: { url: "redis://r", password: "hunter2" } })).not.toContain("hunter2");
  });

  it("names each bad Redis key", () => {
    expect(invalid({ redis: { url: "http://r:6379" } })).toMatch(
      /redis\.url: expected a redis:\/\//,
    );
    expect(invalid({ redis: { url: "redis://r/x/y" } })).toMatch(/redis\.url: the path/);
    expect(invalid({ redis: { url: "redis://r", nodes: ["redis://a"] } })).toMatch(
      /redis\.nodes: set one of url \(one server\), nodes \(Redis Cluster\) and sentinel/,
    );
    expect(invalid({ redis: { nodes: [] } })).toMatch(/redis\.nodes/);
    expect(invalid({ redis: { password_file: "/f", password_env: "X" } })).toMatch(
      /redis\.password_env: set password_file or password_env, not both/,
    );
    expect(invalid({ redis: { password_env: "lower-case" } })).toMatch(/redis\.password_env/);
    expect(invalid({ redis: { tls: { cert_file: "/c" } } })).toMatch(/redis\.tls\.key_file/);
    expect(invalid({ redis: { tls: { verify: false } } })).toMatch(/redis\.tls/);
    expect(invalid({ redis: { key_prefix: "{evil}" } })).toMatch(/redis\.key_prefix/);
    expect(invalid({ redis: { stream_max_len: 10_000 } })).toMatch(
      /redis\.stream_max_len: replaced by redis\.stream_trim\.max_len, which never trims an event a replica's audit log has not yet written/,
    );
    expect(invalid({ redis: { stream_trim: { max_len: 10 } } })).toMatch(
      /redis\.stream_trim\.max_len/,
    );
    expect(invalid({ redis: { stream_trim: { follower_timeout_seconds: 5 } } })).toMatch(
      /redis\.stream_trim\.follower_timeout_seconds/,
    );
    expect(invalid({ redis: { stream_trim: { maxlen: 5000 } } })).toMatch(/redis\.stream_trim/);
    expect(invalid({ store: { kind: "postgres" } })).toMatch(/store\.kind/);
  });

  it("validates rate limits and metrics", () => {
    expect(invalid({ rate_limits: { requests_per_minute_per_agent: -1 } })).toMatch(
      /rate_limits\.requests_per_minute_per_agent/,
    );
    expect(invalid({ rate_limits: { burst: 0 } })).toMatch(/rate_limits\.burst/);
    expect(invalid({ rate_limits: { agents: { "bad id!": { requests_per_minute: 1 } } } })).toMatch(
      /rate_limits\.agents/,
    );
    expect(invalid({ rate_limits: { agents: { a: { requests_per_minute: 0 } } } })).toMatch(
      /rate_limits\.agents\.a\.requests_per_minute/,
    );
    expect(invalid({ metrics: { enabled: true, host: "0.0.0.0" } })).toMatch(
      /metrics\.token_sha256: metrics\.host 0\.0\.0\.0 is reachable from other machines/,
    );
    expect(invalid({ metrics: { token_sha256: "ABC" } })).toMatch(/metrics\.token_sha256/);
    // A token makes a non-loopback listener acceptable; loopback needs none.
    expect(() =>
      parseConfig({ metrics: { enabled: true, host: "0.0.0.0", token_sha256: HASH } }),
    ).not.toThrow();
    expect(() => parseConfig({ metrics: { enabled: true, host: "::1" } })).not.toThrow();
  });

  it("refuses a limit for an agent spelt in another case than its configured id", () => {
    // Agent ids compare without case everywhere else: "Report-Agent" here would
    // silently leave report-agent on the default limit, a throttle that never applies.
    const identities = {
      agents: [{ id: "report-agent", key_sha256: hashKey("a"), owner: "alice" }],
    };
    expect(
      invalid({
        identities,
        rate_limits: { agents: { "Report-Agent": { requests_per_minute: 5 } } },
      }),
    ).toMatch(/rate_limits\.agents\.Report-Agent: .*identities\.agents\.0\.id "report-agent"/);
    expect(() =>
      parseConfig({
        identities,
        rate_limits: { agents: { "report-agent": { requests_per_minute: 5 } } },
      }),
    ).not.toThrow();
  });

  it("refuses a limit for a resource server spelt in another case than its configured id", () => {
    const identities = {
      resource_servers: [{ id: "billing-api", key_sha256: hashKey("r"), audience: "billing-api" }],
    };
    expect(
      invalid({
        identities,
        rate_limits: { resource_servers: { "Billing-API": { refusals_per_minute: 5 } } },
      }),
    ).toMatch(/rate_limits\.resource_servers\.Billing-API: .*write "billing-api"/);
    expect(() =>
      parseConfig({
        identities,
        rate_limits: { resource_servers: { "billing-api": { refusals_per_minute: 5 } } },
      }),
    ).not.toThrow();
  });

  it("resolves per-agent limits, overrides first, and 0 as no limit", () => {
    const limitFor = rateLimitFor(
      parseConfig({
        rate_limits: {
          requests_per_minute_per_agent: 10,
          burst: 4,
          agents: {
            big: { requests_per_minute: 100 },
            huge: { requests_per_minute: 5, burst: 50 },
          },
        },
      }),
    );
    expect(limitFor("anyone")).toEqual({ perMinute: 10, burst: 4 });
    expect(limitFor("big")).toEqual({ perMinute: 100, burst: 4 });
    expect(limitFor("huge")).toEqual({ perMinute: 5, burst: 50 });
    expect(
      rateLimitFor(parseConfig({ rate_limits: { requests_per_minute_per_agent: 0 } }))("a"),
    ).toBe(undefined);
  });

  it("resolves per-resource-server consume limits, overrides first, and 0 as no limit", () => {
    const limitFor = consumeLimitFor(
      parseConfig({
        rate_limits: {
          refusals_per_minute_per_resource_server: 10,
          refusal_burst: 4,
          resource_servers: {
            big: { refusals_per_minute: 100 },
            huge: { refusals_per_minute: 5, burst: 50 },
          },
        },
      }),
    );
    expect(limitFor("anyone")).toEqual({ perMinute: 10, burst: 4 });
    expect(limitFor("big")).toEqual({ perMinute: 100, burst: 4 });
    expect(limitFor("huge")).toEqual({ perMinute: 5, burst: 50 });
    expect(
      consumeLimitFor(parseConfig({ rate_limits: { refusals_per_minute_per_resource_server: 0 } }))(
        "a",
      ),
    ).toBe(undefined);
  });
});

describe("Redis Sentinel and stream trimming in the configuration", () => {
  const SENTINEL = {
    name: "writ-primary",
    nodes: [{ host: "10.0.1.5" }, { host: "::1", port: 26380 }],
  };

  it("accepts Sentinel as the Redis deployment, with default ports", () => {
    const config = parseConfig({ redis: { sentinel: SENTINEL } });
    expect(storeKind(config, {})).toBe("redis");
    expect(config.redis.sentinel).toEqual({
      name: "writ-primary",
      nodes: [
        { host: "10.0.1.5", port: 26379 },
        { host: "::1", port: 26380 },
      ],
    });
  });

  it("names each bad Sentinel key, and never takes a password in the file", () => {
    expect(invalid({ redis: { sentinel: { master: "m" } } })).toMatch(
      /redis\.sentinel\.name: .*\n\s+redis\.sentinel\.nodes: .*\n\s+redis\.sentinel: Unrecognized key: "master"/,
    );
    expect(invalid({ redis: { sentinel: { name: "bad name", nodes: [] } } })).toMatch(
      /redis\.sentinel\.name: 1 to 64 of letters, digits and _ \. -\n\s+redis\.sentinel\.nodes: Too small/,
    );
    expect(
      invalid({ redis: { sentinel: { name: "m", nodes: [{ host: "a b", port: 70_000 }] } } }),
    ).toMatch(
      /redis\.sentinel\.nodes\.0\.host: a host name or IP address.*\n\s+redis\.sentinel\.nodes\.0\.port/,
    );
    expect(invalid({ redis: { url: "redis://r", sentinel: SENTINEL } })).toMatch(
      /redis\.sentinel: set one of url \(one server\), nodes \(Redis Cluster\) and sentinel \(Redis Sentinel\), not several/,
    );
    expect(invalid({ redis: { sentinel: { ...SENTINEL, password: "hunter2" } } })).toMatch(
      /redis\.sentinel\.password: a password is never written in the configuration file/,
    );
    expect(
      invalid({ redis: { sentinel: { ...SENTINEL, password_file: "/f", password_env: "X" } } }),
    ).toMatch(/redis\.sentinel\.password_env: set password_file or password_env, not both/);
    expect(invalid({ redis: { sentinel: { ...SENTINEL, password: "hunter2" } } })).not.toContain(
      "hunter2",
    );
  });

  it("resolves the Sentinels and both passwords; TLS with the tls section", async () => {
    const file = await secretFile("sentinel-pw", "of-the-sentinels\n", 0o600);
    const settings = await resolveRedisSettings(
      parseConfig({
        redis: {
          sentinel: { ...SENTINEL, username: "watcher", password_file: file },
          username: "writ",
          password_env: "PRIMARY_PW",
        },
      }),
      { PRIMARY_PW: "of-the-primary" },
    );
    expect(settings).toMatchObject({
      sentinel: {
        name: "writ-primary",
        nodes: ["redis://10.0.1.5:26379", "redis://[::1]:26380"],
        username: "watcher",
        password: "of-the-sentinels",
      },
      username: "writ",
      password: "of-the-primary",
      endpoint: "sentinel writ-primary via redis://10.0.1.5:26379,redis://[::1]:26380",
    });
    expect(settings.url).toBeUndefined();
    expect(settings.tls).toBeUndefined();
    expect(settings.endpoint).not.toMatch(/of-the/);

    const secure = await resolveRedisSettings(
      parseConfig({ redis: { sentinel: SENTINEL, tls: {} } }),
      {},
    );
    expect(secure.sentinel?.nodes).toEqual(["rediss://10.0.1.5:26379", "rediss://[::1]:26380"]);
    expect(secure.tls).toEqual({});
  });

  it("refuses a missing Sentinel secret and WRIT_REDIS_URL beside Sentinel, naming the key", async () => {
    const cases: [Record<string, unknown>, NodeJS.ProcessEnv, RegExp][] = [
      [
        { sentinel: { ...SENTINEL, password_env: "NOPE" } },
        {},
        /redis\.sentinel\.password_env: the environment variable NOPE is not set; set it, or remove redis\.sentinel\.password_env/,
      ],
      [
        { sentinel: { ...SENTINEL, password_file: join(dir, "missing") } },
        {},
        /redis\.sentinel\.password_file: cannot read .*ENOENT/,
      ],
      [
        { sentinel: SENTINEL },
        { WRIT_REDIS_URL: "redis://r" },
        /WRIT_REDIS_URL is set, but redis\.sentinel is configured too/,
      ],
    ];
    for (const [redis, env, pattern] of cases) {
      const error = await resolveRedisSettings(parseConfig({ redis }), env).catch((e) => e);
      expect(error, JSON.stringify(redis)).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(pattern);
    }
  });

  it("keeps every event by default; stream_trim sets a limit and a follower timeout", async () => {
    const plain = await resolveRedisSettings(parseConfig({ redis: { url: "redis://r" } }), {});
    expect(plain.streamTrim).toBeUndefined();
    const defaults = await resolveRedisSettings(
      parseConfig({ redis: { url: "redis://r", stream_trim: {} } }),
      {},
    );
    expect(defaults.streamTrim).toEqual({ maxLen: 10_000_000, followerTimeoutMs: 86_400_000 });
    const set = await resolveRedisSettings(
      parseConfig({
        redis: {
          sentinel: SENTINEL,
          stream_trim: { max_len: 5000, follower_timeout_seconds: 600 },
        },
      }),
      {},
    );
    expect(set.streamTrim).toEqual({ maxLen: 5000, followerTimeoutMs: 600_000 });
  });
});

describe("resolving Redis settings", () => {
  it("takes WRIT_REDIS_URL over redis.url, and it may carry a password", async () => {
    const config = parseConfig({ redis: { url: "redis://file:6379" } });
    const settings = await resolveRedisSettings(config, {
      WRIT_REDIS_URL: "rediss://writ:s3cret@env.internal:6380/1",
    });
    expect(settings.url).toBe("rediss://writ:s3cret@env.internal:6380/1");
    expect(settings.tls).toEqual({});
    expect(settings.endpoint).toBe("rediss://writ@env.internal:6380/1");
    expect(settings.endpoint).not.toContain("s3cret");
  });

  it("reads the password from a private file or a named variable", async () => {
    const file = await secretFile("pw", "from-file\n", 0o600);
    const fromFile = await resolveRedisSettings(
      parseConfig({ redis: { url: "redis://r", password_file: file, username: "writ" } }),
      {},
    );
    expect(fromFile).toMatchObject({ password: "from-file", username: "writ" });
    const fromEnv = await resolveRedisSettings(
      parseConfig({ redis: { url: "redis://r", password_env: "MY_REDIS_PW" } }),
      { MY_REDIS_PW: "from-env" },
    );
    expect(fromEnv.password).toBe("from-env");
  });

  it("reads one secret alike from a file and from a variable: one trailing newline dropped", async () => {
    const file = await secretFile("pw-both", "s3cret\n", 0o600);
    const fromFile = await resolveRedisSettings(
      parseConfig({ redis: { url: "redis://r", password_file: file } }),
      {},
    );
    const fromEnv = await resolveRedisSettings(
      parseConfig({ redis: { url: "redis://r", password_env: "MY_REDIS_PW" } }),
      { MY_REDIS_PW: "s3cret\n" },
    );
    expect(fromFile.password).toBe("s3cret");
    expect(fromEnv.password).toBe(fromFile.password);
  });

  it("refuses secrets others can read, missing, empty or doubled ones, naming the key and fix", async () => {
    const open = await secretFile("open", "pw", 0o644);
    const empty = await secretFile("empty", "\n", 0o600);
    const cases: [Record<string, unknown>, NodeJS.ProcessEnv, RegExp][] = [
      [
        { url: "redis://r", password_file: open },
        {},
        /redis\.password_file: .* can be read by other users .*chmod 600/,
      ],
      [
        { url: "redis://r", password_file: join(dir, "missing") },
        {},
        /redis\.password_file: cannot read .*ENOENT/,
      ],
      [{ url: "redis://r", password_file: empty }, {}, /redis\.password_file: .* is empty/],
      [{ url: "redis://r", password_file: dir }, {}, /redis\.password_file: .* not a regular file/],
      [
        { url: "redis://r", password_env: "NOPE" },
        {},
        /redis\.password_env: the environment variable NOPE is not set/,
      ],
      [
        { password_env: "PW" },
        { PW: "x", WRIT_REDIS_URL: "redis://:y@r" },
        /carries a password and redis\.password_file/,
      ],
      [{}, { WRIT_REDIS_URL: "http://r" }, /WRIT_REDIS_URL: expected a redis:\/\//],
      [
        { nodes: ["redis://a"] },
        { WRIT_REDIS_URL: "redis://r" },
        /WRIT_REDIS_URL is set, but redis\.nodes/,
      ],
      [{ nodes: ["redis://a", "rediss://b"] }, {}, /mix of redis:\/\/ and rediss:\/\//],
      [
        { url: "redis://r", tls: { ca_file: "/ca" } },
        {},
        /redis\.tls is set, but the Redis URL is redis:\/\//,
      ],
      [
        { url: "rediss://r", tls: { ca_file: open } },
        {},
        /redis\.tls\.ca_file: .* is not a PEM file/,
      ],
      [{}, {}, /no Redis is configured: set redis\.url/],
    ];
    for (const [redis, env, pattern] of cases) {
      const config = parseConfig({ store: { kind: "redis" }, redis });
      const error = await resolveRedisSettings(config, env).catch((e: unknown) => e);
      expect(error, JSON.stringify(redis)).toBeInstanceOf(ConfigError);
      expect((error as Error).message, JSON.stringify(redis)).toMatch(pattern);
      expect((error as Error).message).not.toMatch(/\by\b@|pw\b/);
    }
  });

  it("loads TLS material for rediss:// and keeps the client key private", async () => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const ca = await secretFile("ca.pem", pem, 0o644);
    const cert = await secretFile("cert.pem", pem, 0o644);
    const key = await secretFile(
      "key.pem",
      "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
      0o600,
    );
    const settings = await resolveRedisSettings(
      parseConfig({
        redis: {
          nodes: ["rediss://a:7000", "rediss://b:7000"],
          tls: { ca_file: ca, cert_file: cert, key_file: key, servername: "redis.internal" },
        },
      }),
      {},
    );
    expect(settings.clusterNodes).toEqual(["rediss://a:7000", "rediss://b:7000"]);
    expect(settings.tls).toMatchObject({ ca: pem, cert: pem, servername: "redis.internal" });
    await chmod(key, 0o644);
    await expect(
      resolveRedisSettings(
        parseConfig({ redis: { url: "rediss://a", tls: { cert_file: cert, key_file: key } } }),
        {},
      ),
    ).rejects.toThrow(/redis\.tls\.key_file: .* can be read by other users/);
  });
});

describe("the production review (writ serve)", () => {
  async function review(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
    return reviewForProduction(parseConfig({ data_dir: dir, ...raw }), env, "writ.yaml");
  }

  it("refuses the memory store, missing keys, no agents and no auditors, naming the fix", async () => {
    const { refusals } = await review({ jwt: { keys_file: join(dir, "none.json") } });
    const keys = refusals.map((r) => r.key);
    expect(keys).toEqual([
      "store.kind",
      "jwt.keys_file",
      "identities.agents",
      "identities.auditors",
    ]);
    expect(refusals[1]?.problem).toMatch(/never generates throwaway keys/);
    expect(refusals[1]?.fix).toMatch(/writ keys init --config writ\.yaml/);
  });

  it("refuses a key ring others can read", async () => {
    const file = join(dir, "ring", "jwt.json");
    await createKeyRing(file, "EdDSA");
    await chmod(file, 0o644);
    const { refusals } = await review({
      jwt: { keys_file: file },
      identities: IDENTITIES,
      redis: { url: "redis://127.0.0.1:6379" },
    });
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ key: "jwt.keys_file", fix: `chmod 600 ${file}` });
    await chmod(file, 0o600);
    const fine = await review({
      jwt: { keys_file: file },
      identities: IDENTITIES,
      redis: { url: "redis://127.0.0.1:6379" },
    });
    expect(fine.refusals).toEqual([]);
  });

  it("names Sentinel in the fix for the memory store, and warns about open Sentinels off the host", async () => {
    const { refusals } = await review({ identities: IDENTITIES });
    expect(refusals.find((r) => r.key === "store.kind")?.fix).toMatch(
      /redis\.url \(or redis\.nodes for Redis Cluster, redis\.sentinel for Redis Sentinel\)/,
    );
    const sentinel = { name: "m", nodes: [{ host: "sentinel.internal" }] };
    const open = await review({ identities: IDENTITIES, redis: { sentinel } });
    expect(open.warnings.map((w) => w.key)).toEqual([
      "redis.tls",
      "redis.sentinel.password_file",
      "redis.password_file",
    ]);
    const closed = await review({
      identities: IDENTITIES,
      redis: {
        sentinel: { ...sentinel, password_env: "S" },
        password_env: "P",
        tls: {},
      },
    });
    expect(closed.warnings).toEqual([]);
    const local = await review({
      identities: IDENTITIES,
      redis: { sentinel: { name: "m", nodes: [{ host: "127.0.0.1" }] } },
    });
    expect(local.warnings).toEqual([]);
  });

  it("warns, naming them, about agents that may name anyone as on_behalf_of", async () => {
    const oidcEntry = (acts_for?: string[]) => ({
      issuer: "https://token.actions.githubusercontent.com",
      audience: "https://writ.example.com",
      agent: { id: "gh:{repository}", owner: "{actor}", ...(acts_for ? { acts_for } : {}) },
      require: { repository_owner: "acme" },
    });
    const redis = { url: "redis://127.0.0.1:6379" };
    const open = await review({
      redis,
      identities: {
        ...IDENTITIES,
        agents: [
          ...IDENTITIES.agents,
          { id: "free-agent", key_sha256: hashKey("free"), owner: "o" },
        ],
        oidc: [oidcEntry()],
      },
    });
    const warning = open.warnings.find((w) => w.key === "identities.agents[].acts_for");
    expect(warning?.problem).toMatch(
      /may name anyone as on_behalf_of.*: free-agent, gh:\{repository\}$/,
    );
    expect(warning?.fix).toMatch(/acts_for: \[\]/);
    const closed = await review({
      redis,
      identities: { ...IDENTITIES, oidc: [oidcEntry(["{actor}"])] },
    });
    expect(closed.warnings).toEqual([]);
  });

  it("warns about plain-text or password-less Redis off the host, and limits turned off", async () => {
    const { warnings } = await review(
      {
        identities: IDENTITIES,
        rate_limits: {
          requests_per_minute_per_agent: 0,
          refusals_per_minute_per_resource_server: 0,
        },
      },
      { WRIT_REDIS_URL: "redis://redis.internal:6379" },
    );
    expect(warnings.map((w) => w.key)).toEqual([
      "rate_limits.requests_per_minute_per_agent",
      "rate_limits.refusals_per_minute_per_resource_server",
      "WRIT_REDIS_URL",
      "redis.password_file",
    ]);
  });
});
