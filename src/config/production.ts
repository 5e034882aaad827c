import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { storeKind } from "./redis-settings.js";
import type { WritConfig } from "./schema.js";

/** Something that makes a configuration unfit for production, and how to fix it. */
export interface ProductionFinding {
  /** The configuration key (or environment variable) at fault. */
  readonly key: string;
  readonly problem: string;
  readonly fix: string;
}

export interface ProductionReview {
  /** `writ serve` refuses to start while any of these remain. */
  readonly refusals: readonly ProductionFinding[];
  /** Allowed, but worth a loud line in the log. */
  readonly warnings: readonly ProductionFinding[];
}

/** Where the JWT key ring lives for this configuration. */
export function jwtKeysPath(config: WritConfig): string {
  return resolve(config.jwt.keys_file ?? join(config.data_dir, "keys", "jwt.json"));
}

/** Where this process's audit checkpoint signing key lives for this configuration. */
export function checkpointKeyPath(config: WritConfig): string {
  return resolve(
    config.audit.checkpoint_key_file ?? join(config.data_dir, "keys", "checkpoint.json"),
  );
}

/**
 * The configuration as `writ serve` runs it: settings whose default depends on
 * production take their production value here (`console.secure_cookies`: on).
 */
export function withProductionDefaults(config: WritConfig): WritConfig {
  return {
    ...config,
    console: { ...config.console, secure_cookies: config.console.secure_cookies ?? true },
  };
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "[::1]" || host === "::1";
}

/**
 * Reviews a configuration for `writ serve`. Refused: the embedded store (it
 * loses every request and cannot be shared by replicas), a missing or exposed
 * signing key file (`writ serve` never generates one: every replica must sign
 * with the same keys, and a key made on the fly would vanish with its
 * container), and a configuration nobody could use or audit.
 */
export async function reviewForProduction(
  config: WritConfig,
  env: NodeJS.ProcessEnv,
  configPath: string,
): Promise<ProductionReview> {
  const refusals: ProductionFinding[] = [];
  const warnings: ProductionFinding[] = [];

  if (storeKind(config, env) === "memory") {
    refusals.push({
      key: "store.kind",
      problem:
        "the embedded memory store loses every request on restart and cannot be shared by replicas",
      fix: "set store.kind: redis and redis.url (or redis.nodes for Redis Cluster, redis.sentinel for Redis Sentinel), or WRIT_REDIS_URL",
    });
  }

  const keysPath = jwtKeysPath(config);
  const keysKey = config.jwt.keys_file === undefined ? "jwt.keys_file (default)" : "jwt.keys_file";
  try {
    const info = await stat(keysPath);
    if (!info.isFile()) {
      refusals.push({
        key: keysKey,
        problem: `${keysPath} is not a file`,
        fix: `point jwt.keys_file at the key ring made by \`writ keys init --config ${configPath}\``,
      });
    } else if (process.platform !== "win32" && (info.mode & 0o007) !== 0) {
      refusals.push({
        key: keysKey,
        problem: `${keysPath} holds private signing keys and other users can read it (mode ${(info.mode & 0o777).toString(8)})`,
        fix: `chmod 600 ${keysPath}`,
      });
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refusals.push({
      key: keysKey,
      problem:
        code === "ENOENT"
          ? `there is no JWT key ring at ${keysPath}, and writ serve never generates throwaway keys`
          : `cannot read ${keysPath} (${code ?? "error"})`,
      fix: `create it once with \`writ keys init --config ${configPath}\` and give every replica the same file`,
    });
  }

  refusals.push(...(await reviewCheckpointKey(config)));

  const { identities } = config;
  if (identities.agents.length === 0 && identities.oidc.length === 0) {
    refusals.push({
      key: "identities.agents",
      problem: "no agents are configured, so nothing could ask for a credential",
      fix: "add agents with `writ keygen --kind agent` (or trust a workload identity issuer in identities.oidc)",
    });
  }
  if (identities.auditors.length === 0) {
    refusals.push({
      key: "identities.auditors",
      problem: "no auditors are configured, so nobody could read the record of what was issued",
      fix: "add at least one auditor with `writ keygen --kind auditor`",
    });
  }
  if (identities.reviewers.length === 0) {
    warnings.push({
      key: "identities.reviewers",
      problem: "no reviewers: requests that need approval can only expire",
      fix: "add reviewers with `writ keygen --kind reviewer`",
    });
  }

  warnings.push(...reviewActsFor(config));

  if (config.rate_limits.requests_per_minute_per_agent === 0) {
    warnings.push({
      key: "rate_limits.requests_per_minute_per_agent",
      problem: "agents are not rate limited: one agent can flood reviewers and the record",
      fix: "set a limit, e.g. 600",
    });
  }

  if (config.rate_limits.refusals_per_minute_per_resource_server === 0) {
    warnings.push({
      key: "rate_limits.refusals_per_minute_per_resource_server",
      problem:
        "refused consumes are not rate limited: a resource server retrying a used token in a loop adds an event a try to the record",
      fix: "set a limit, e.g. 60",
    });
  }

  if (config.console.enabled && config.console.secure_cookies === false) {
    warnings.push({
      key: "console.secure_cookies",
      problem:
        "console session cookies are sent without Secure, so a plain-http request can carry them",
      fix: "remove console.secure_cookies (on by default under writ serve) and reach the console over HTTPS",
    });
  }

  warnings.push(...reviewRedisTransport(config, env));

  return { refusals, warnings };
}

/**
 * Agents without `acts_for` may name anyone as `on_behalf_of`, and so keep any
 * one reviewer out of their approvals. Allowed, to keep older configurations
 * working, but said once at start, naming them.
 */
function reviewActsFor(config: WritConfig): ProductionFinding[] {
  const { agents, oidc } = config.identities;
  const open = [
    ...agents.filter((agent) => agent.acts_for === undefined).map((agent) => agent.id),
    ...oidc.filter((entry) => entry.agent.acts_for === undefined).map((entry) => entry.agent.id),
  ];
  if (open.length === 0) return [];
  const named =
    open.slice(0, 10).join(", ") + (open.length > 10 ? `, and ${open.length - 10} more` : "");
  return [
    {
      key: "identities.agents[].acts_for",
      problem: `agents may name anyone as on_behalf_of, and so keep that person from reviewing their requests: ${named}`,
      fix: "give each agent (and each identities.oidc[].agent) the people it may act for in acts_for, or acts_for: [] if it acts for nobody",
    },
  ];
}

/**
 * The audit checkpoint key, when it exists, must be a file only writ's user can
 * use: whoever reads it can sign checkpoints that hide a cut log. A missing one
 * is made at start (mode 0600 in a 0700 directory); each replica has its own.
 */
async function reviewCheckpointKey(config: WritConfig): Promise<ProductionFinding[]> {
  const path = checkpointKeyPath(config);
  const key =
    config.audit.checkpoint_key_file === undefined
      ? "audit.checkpoint_key_file (default)"
      : "audit.checkpoint_key_file";
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      return [
        {
          key,
          problem: `${path} is not a file`,
          fix: "point audit.checkpoint_key_file at the checkpoint key file, or at a path where writ may create one",
        },
      ];
    }
    if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      return [
        {
          key,
          problem: `${path} holds the private key that signs audit checkpoints and other users can read or change it (mode ${(info.mode & 0o777).toString(8)})`,
          fix: `chmod 600 ${path}`,
        },
      ];
    }
    return [];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return [];
    return [
      {
        key,
        problem: `cannot read ${path} (${code ?? "error"})`,
        fix: `check the file's owner and mode (chmod 600 ${path})`,
      },
    ];
  }
}

/**
 * Warnings for Redis on another host reached without TLS or without a
 * password. With Sentinel the Sentinels count too: a Sentinel anyone can talk
 * to can name any server as the primary.
 */
function reviewRedisTransport(config: WritConfig, env: NodeJS.ProcessEnv): ProductionFinding[] {
  const redis = config.redis;
  const noPassword = redis.password_file === undefined && redis.password_env === undefined;
  const { sentinel } = redis;
  if (sentinel !== undefined && !env.WRIT_REDIS_URL) {
    const remote = sentinel.nodes.find((n) => !isLoopbackHost(n.host));
    if (remote === undefined) return [];
    const findings: ProductionFinding[] = [];
    if (redis.tls === undefined) {
      findings.push({
        key: "redis.tls",
        problem: `traffic to the Sentinels (${remote.host}) and the primary they name is not encrypted`,
        fix: "add a redis.tls section (TLS to the Sentinels and the primary), or keep Redis on a private network you trust",
      });
    }
    if (sentinel.password_file === undefined && sentinel.password_env === undefined) {
      findings.push({
        key: "redis.sentinel.password_file",
        problem: `the Sentinels (${remote.host}) are used without a password, and they decide which server writ writes to`,
        fix: "set requirepass in sentinel.conf and redis.sentinel.password_file",
      });
    }
    if (noPassword) {
      findings.push({
        key: "redis.password_file",
        problem: "the primary is used without a password",
        fix: "give writ its own ACL user (see infra/redis/redis.conf) and set redis.password_file",
      });
    }
    return findings;
  }
  const urls = [
    ...(env.WRIT_REDIS_URL ? [env.WRIT_REDIS_URL] : redis.url !== undefined ? [redis.url] : []),
    ...(redis.nodes ?? []),
  ];
  for (const value of urls) {
    const url = URL.canParse(value) ? new URL(value) : undefined;
    if (url === undefined || isLoopbackHost(url.hostname)) continue;
    const findings: ProductionFinding[] = [];
    if (url.protocol === "redis:") {
      findings.push({
        key: env.WRIT_REDIS_URL
          ? "WRIT_REDIS_URL"
          : redis.url !== undefined
            ? "redis.url"
            : "redis.nodes",
        problem: `traffic to Redis at ${url.host} is not encrypted`,
        fix: "use rediss:// (TLS), or keep Redis on a private network you trust",
      });
    }
    if (url.password === "" && noPassword) {
      findings.push({
        key: "redis.password_file",
        problem: `Redis at ${url.host} is used without a password`,
        fix: "give writ its own ACL user (see infra/redis/redis.conf) and set redis.password_file",
      });
    }
    return findings;
  }
  return [];
}

/** The refusals as one message for the operator. */
export function describeRefusals(refusals: readonly ProductionFinding[]): string {
  return [
    "writ serve refuses to start:",
    ...refusals.map((r) => `  ${r.key}: ${r.problem}.\n    Fix: ${r.fix}.`),
  ].join("\n");
}
