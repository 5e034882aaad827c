import cluster from "node:cluster";
import { parseArgs } from "node:util";
import { createConsoleLogger } from "../../adapters/console-logger.js";
import { loadKeyRing } from "../../adapters/jwt-keys.js";
import { ConfigError, loadConfigFile, readEnv } from "../../config/load.js";
import {
  describeRefusals,
  jwtKeysPath,
  type ProductionFinding,
  reviewForProduction,
  withProductionDefaults,
} from "../../config/production.js";
import { resolveRedisSettings } from "../../config/redis-settings.js";
import type { WritConfig } from "../../config/schema.js";
import { isWritError } from "../../domain/errors.js";
import { type Command, type CommandIo, EXIT, UsageError } from "../command.js";
import type { ProcessRole, StartedWrit } from "./start-writ.js";

const HELP = `
Usage: writ serve [--config <file>] [--host <addr>] [--port <n>] [--pretty-logs] [--quiet]

Runs writ for production: any number of these processes, on one Redis, behind
a load balancer. Refuses to start, naming the key and the fix, with the
embedded memory store, without a JWT key ring (writ serve never generates
keys: \`writ keys init\`), without agents or auditors, or with any
configuration error.

Options:
  --config <file>     The configuration file (YAML or JSON); default WRIT_CONFIG
  --host <addr>       Address to listen on (overrides server.host)
  --port <n>          Port to listen on (overrides server.port; 0 picks a free one)
  --pretty-logs       Log text for people instead of JSON lines
  --quiet             Do not log every HTTP request

Environment:
  WRIT_CONFIG         The configuration file, if --config is not given
  WRIT_REDIS_URL      The Redis URL (replaces redis.url; may carry a password)
  SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_APP_TOKEN, WRIT_SLACK_API_URL,
  WRIT_SLACK_CHANNEL  Slack, when the configuration file does not set it (see
                      docs/configuration.md and docs/slack.md)

With server.workers above 1, the process is a primary that keeps the audit
log and runs background work, and that many worker processes serve the API
on the one port.

On SIGTERM or SIGINT writ reports not ready, ends long-polls, finishes
in-flight requests (server.shutdown_grace_seconds) and exits; a second signal
exits at once. See docs/operations.md.
`;

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65_535) {
    throw new UsageError("--port takes a number from 0 to 65535");
  }
  return port;
}

/** Waits for SIGTERM or SIGINT; a second one forces the exit. */
function untilSignal(onForce: () => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off("SIGINT", first);
      process.off("SIGTERM", first);
      process.once("SIGINT", onForce);
      process.once("SIGTERM", onForce);
      resolve(signal);
    };
    process.on("SIGINT", first);
    process.on("SIGTERM", first);
  });
}

/** Node's codes for a server certificate that does not verify. */
const CERTIFICATE_ERRORS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Why `writ serve` could not reach Redis at start, naming the key to fix. */
function unreachable(
  config: WritConfig,
  env: NodeJS.ProcessEnv,
  endpoint: string,
  cause: unknown,
): ProductionFinding {
  const key = env.WRIT_REDIS_URL
    ? "WRIT_REDIS_URL"
    : config.redis.url
      ? "redis.url"
      : config.redis.sentinel
        ? "redis.sentinel"
        : "redis.nodes";
  const within = `within ${config.redis.connect_timeout_seconds} s`;
  if (typeof cause === "string" && CERTIFICATE_ERRORS.has(cause)) {
    return {
      key: config.redis.tls?.ca_file !== undefined ? "redis.tls.ca_file" : key,
      problem: `cannot reach Redis at ${endpoint} ${within}: its TLS certificate does not verify (${cause}), so writ refuses the connection`,
      fix:
        cause === "ERR_TLS_CERT_ALTNAME_INVALID"
          ? "connect by a name the certificate holds, or set redis.tls.servername to one"
          : "point redis.tls.ca_file at the CA that signed Redis's certificate (certificates are always verified)",
    };
  }
  if (cause === "WRONGPASS" || cause === "NOAUTH" || cause === "NOPERM") {
    return {
      key,
      problem: `cannot reach Redis at ${endpoint} ${within}: it refused writ's credentials (${cause})`,
      fix: "check redis.username and the password (redis.password_file, redis.password_env or WRIT_REDIS_URL) against writ's ACL user in Redis",
    };
  }
  return {
    key,
    problem: `cannot reach Redis at ${endpoint} ${within}${typeof cause === "string" ? ` (${cause})` : ""}`,
    fix: "check the address, the network path, the password or ACL user, and TLS (rediss://); writ retries by itself only once it has started",
  };
}

function refuse(io: CommandIo, findings: readonly ProductionFinding[]): number {
  io.stderr(`${describeRefusals(findings)}\n`);
  return EXIT.failed;
}

export const serveCommand: Command = {
  path: ["serve"],
  summary: "Run writ in production (Redis, configured identities and keys)",
  help: HELP,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        config: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "pretty-logs": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    const port = values.port === undefined ? undefined : parsePort(values.port);
    const configFile = values.config ?? readEnv(io.env).WRIT_CONFIG;
    if (configFile === undefined) {
      return refuse(io, [
        {
          key: "--config",
          problem: "no configuration file was given",
          fix: "pass --config <file> or set WRIT_CONFIG (see docs/configuration.md)",
        },
      ]);
    }
    let config: WritConfig;
    try {
      config = withProductionDefaults(await loadConfigFile(configFile));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      io.stderr(`writ serve refuses to start:\n${error.message}\n`);
      return EXIT.failed;
    }
    if (values.host !== undefined)
      config = { ...config, server: { ...config.server, host: values.host } };
    if (port !== undefined) config = { ...config, server: { ...config.server, port } };

    const review = await reviewForProduction(config, io.env, configFile);
    if (review.refusals.length > 0) return refuse(io, review.refusals);
    // Resolved once here for its errors (a missing secret file, a bad WRIT_REDIS_URL);
    // the connection itself is made when writ starts.
    try {
      await resolveRedisSettings(config, io.env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      io.stderr(`writ serve refuses to start:\n  ${error.message}\n`);
      return EXIT.failed;
    }
    const keysPath = jwtKeysPath(config);
    const keys = await loadKeyRing(keysPath).catch((error: unknown) => error as Error);
    if (keys instanceof Error) {
      return refuse(io, [
        {
          key: "jwt.keys_file",
          problem: `${keysPath} is not a usable key ring (${keys.message})`,
          fix: "restore the file from your secret store, or create a new one with `writ keys init`",
        },
      ]);
    }
    if (keys.active.alg !== config.jwt.algorithm) {
      return refuse(io, [
        {
          key: "jwt.algorithm",
          problem: `is ${config.jwt.algorithm}, but the active key in ${keysPath} is ${keys.active.alg}`,
          fix: `set jwt.algorithm: ${keys.active.alg}, or create a ring for ${config.jwt.algorithm}`,
        },
      ]);
    }

    const workers = config.server.workers;
    const isWorker = workers > 1 && cluster.isWorker;
    const logger = createConsoleLogger({
      format: values["pretty-logs"] ? "pretty" : "json",
      quiet: values.quiet,
      write: (line) => io.stderr(`${line}\n`),
      ...(isWorker ? { fields: { worker: cluster.worker?.id } } : {}),
    });
    if (!isWorker) {
      for (const warning of review.warnings) {
        logger.warn(`${warning.key}: ${warning.problem}`, { fix: warning.fix });
      }
    }

    /** Starts this process's part of writ, or answers the exit code of a refusal. */
    const start = async (role?: ProcessRole): Promise<StartedWrit | number> => {
      // Loaded on demand so other commands do not pay for the server stack at start.
      const { startWrit } = await import("./start-writ.js");
      try {
        return await startWrit(config, {
          env: io.env,
          logger,
          keys,
          ...(role !== undefined ? { role } : {}),
        });
      } catch (error) {
        if (isWritError(error) && error.code === "store_unavailable") {
          const settings = await resolveRedisSettings(config, io.env);
          return refuse(io, [unreachable(config, io.env, settings.endpoint, error.details?.cause)]);
        }
        if (error instanceof ConfigError) {
          io.stderr(`writ serve refuses to start:\n  ${error.message}\n`);
          return EXIT.failed;
        }
        throw error;
      }
    };
    const announce = (url: string, metricsUrl: string | undefined, started: StartedWrit) => {
      logger.info("writ serve started", {
        url,
        redis: started.redisEndpoint,
        metrics: metricsUrl === undefined ? undefined : `${metricsUrl}/metrics`,
        policies: started.writ.policy.policyIds().length,
        jwt_kid: keys.active.kid,
        ...(workers > 1 ? { workers } : {}),
      });
      io.stdout(
        [
          `writ serve listening on ${url}`,
          ...(metricsUrl !== undefined ? [`  metrics: ${metricsUrl}/metrics`] : []),
          "",
        ].join("\n"),
      );
    };
    const force = () => {
      io.stderr("writ serve: second signal, exiting now\n");
      process.exit(EXIT.failed);
    };

    if (isWorker) {
      const { runWorker } = await import("../../cluster/worker.js");
      return runWorker({ logger, start });
    }
    if (workers > 1) {
      const { runPrimary } = await import("../../cluster/primary.js");
      let primary: StartedWrit | undefined;
      const code = await runPrimary({
        workers,
        shutdownGraceSeconds: config.server.shutdown_grace_seconds,
        logger,
        async start(role) {
          const started = await start(role);
          if (typeof started !== "number") primary = started;
          return started;
        },
        onListening: (url, metricsUrl) => {
          if (primary !== undefined) announce(url, metricsUrl, primary);
        },
        async untilStopped() {
          const signal = await untilSignal(force);
          logger.info("writ serve draining", { signal });
        },
      });
      process.off("SIGINT", force);
      process.off("SIGTERM", force);
      if (code === EXIT.ok) logger.info("writ serve stopped");
      return code;
    }

    const started = await start();
    if (typeof started === "number") return started;
    const { server } = started;
    announce(server.url, server.metricsUrl, started);
    const signal = await untilSignal(force);
    logger.info("writ serve draining", { signal });
    await server.stop();
    process.off("SIGINT", force);
    process.off("SIGTERM", force);
    logger.info("writ serve stopped");
    return EXIT.ok;
  },
};
