import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createConsoleLogger } from "../../adapters/console-logger.js";
import { createConsoleNotifier } from "../../adapters/console-notifier.js";
import { withDevAwsRole } from "../../config/dev-aws.js";
import {
  type DevIdentities,
  devPrincipals,
  devSlackUserIds,
  loadOrCreateDevIdentities,
} from "../../config/dev-identities.js";
import { loadConfigFile, parseConfig, readEnv } from "../../config/load.js";
import { parseDevSlackUsers } from "../../config/notify-config.js";
import { redisUrlProblem } from "../../config/operations-schema.js";
import type { WritConfig } from "../../config/schema.js";
import { type Command, UsageError } from "../command.js";

/** The policies shipped with writ, used when the working directory has none. */
const BUNDLED_POLICIES = fileURLToPath(new URL("../../../policies", import.meta.url));

const HELP = `
Usage: writ dev [options]

Runs writ in one process for trying it: the embedded store, generated signing
keys, the demo policies and demo identities (written with their keys to
<data-dir>/dev-identities.json). Not for production.

Options:
  --port <n>          Port to listen on (default 8787; 0 picks a free one)
  --host <addr>       Address to listen on (default 127.0.0.1)
  --data-dir <dir>    Keys, audit log and identities (default .writ)
  --config <file>     A writ configuration file (YAML or JSON), as in
                      production; default WRIT_CONFIG
  --policies <dir>    Cedar policies directory (default ./policies)
  --redis-url <url>   Keep requests in this Redis instead of memory. A second
                      writ dev with the same --data-dir and --redis-url on
                      another --port joins as a second replica
  --json-logs         Log JSON lines instead of text
  --quiet             Do not log every HTTP request

Environment:
  WRIT_CONFIG         The configuration file, if --config is not given
  WRIT_REDIS_URL      Keep requests in this Redis; --redis-url wins over it
  WRIT_AWS_ROLE_ARN   Issue AWS credentials (credential "aws"): every AWS request
                      maps to this IAM role, assumed with writ's own credentials
                      from the AWS SDK's default chain (see docs/aws.md)
  WRIT_DEV_SLACK_USERS
                      Slack user ids of the demo reviewers alice, bob and carol,
                      comma-separated, in that order (see docs/slack.md)
  SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_APP_TOKEN, WRIT_SLACK_API_URL,
  WRIT_SLACK_CHANNEL  Slack, as under writ serve (see docs/configuration.md)
`;

/**
 * Digits only, as `writ serve` takes it: Number() would also read "1e3", "0x10"
 * and "" (as port 0, a random one) as ports.
 */
function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65_535) {
    throw new UsageError("--port takes a number from 0 to 65535");
  }
  return port;
}

/**
 * The audit log directory this process writes, as the configuration spells its
 * base: a second `writ dev` on the same data dir writes `audit/replicas/2`, and
 * a user verifying "the" log should be told which one is this process's.
 */
function auditLogDir(config: WritConfig, openedDir: string | undefined): string {
  const base = config.audit.dir ?? join(config.data_dir, "audit");
  return openedDir === undefined ? base : join(base, relative(resolve(base), openedDir));
}

/** The hints to try it, each a command that runs as printed in the shell that started writ dev. */
function tryItHints(url: string, identitiesPath: string, identities: DevIdentities): string[] {
  const agent = identities.agents[0];
  const approver = identities.reviewers.findIndex((r) => r.id !== agent?.owner);
  // Inside single quotes the shell takes everything literally but a single quote.
  const file = JSON.stringify(resolve(identitiesPath)).replaceAll("'", `'\\''`);
  const keyOf = (entry: string) => `$(node -p 'require(${file}).${entry}.key')`;
  // `writ` is on PATH only when installed globally; npx finds it in the project
  // too (the README's `npm install && npx writ dev`), and globally.
  return [
    "Try it:",
    `  export WRIT_URL=${url}`,
    `  export WRIT_KEY=${keyOf("agents[0]")}   # ${agent?.id}, owned by ${agent?.owner}`,
    `  npx writ request --action db:export --resource db://prod/customers --audience billing-api --reason "churn analysis"`,
    ...(approver >= 0
      ? [
          `  WRIT_KEY=${keyOf(`reviewers[${approver}]`)} npx writ approve <request id>   # ${identities.reviewers[approver]?.id}; then a second data owner; ${agent?.owner} owns the agent and cannot`,
        ]
      : []),
    `  API docs: ${url}/docs`,
  ];
}

export const devCommand: Command = {
  path: ["dev"],
  summary: "Run writ locally with the embedded store and demo identities",
  help: HELP,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "data-dir": { type: "string" },
        config: { type: "string" },
        policies: { type: "string" },
        "redis-url": { type: "string" },
        "json-logs": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    const configFile = values.config ?? readEnv(io.env).WRIT_CONFIG;
    let config: WritConfig = configFile
      ? await loadConfigFile(configFile)
      : parseConfig({}, "defaults");
    if (values.port !== undefined) {
      config = { ...config, server: { ...config.server, port: parsePort(values.port) } };
    }
    if (values.host !== undefined)
      config = { ...config, server: { ...config.server, host: values.host } };
    if (values["data-dir"] !== undefined) config = { ...config, data_dir: values["data-dir"] };
    if (values.policies !== undefined) {
      config = { ...config, policies: { ...config.policies, dir: values.policies } };
    } else if (!configFile && !existsSync(config.policies.dir)) {
      config = { ...config, policies: { ...config.policies, dir: BUNDLED_POLICIES } };
    }
    config = withDevAwsRole(config, readEnv(io.env).WRIT_AWS_ROLE_ARN);

    const redisUrl = values["redis-url"];
    if (redisUrl !== undefined) {
      const problem = redisUrlProblem(redisUrl, true);
      if (problem !== undefined) throw new UsageError(`--redis-url: ${problem}`);
      config = { ...config, store: { kind: "redis" } };
    }
    const env = redisUrl === undefined ? io.env : { ...io.env, WRIT_REDIS_URL: redisUrl };

    const logger = createConsoleLogger({
      format: values["json-logs"] ? "json" : "pretty",
      quiet: values.quiet,
      write: (line) => io.stderr(`${line}\n`),
    });
    if (config.server.workers > 1) {
      logger.warn("server.workers applies to writ serve; writ dev runs in one process", {
        workers: config.server.workers,
      });
    }
    const { identities: configured } = config;
    const hasIdentities =
      configured.agents.length +
        configured.reviewers.length +
        configured.auditors.length +
        configured.resource_servers.length >
      0;
    const dev = hasIdentities ? undefined : await loadOrCreateDevIdentities(config.data_dir);
    // Loaded here, not at the top: the server stack is heavy, and every other
    // command (and `--help`) would pay for it at start.
    const { startWrit } = await import("./start-writ.js");
    const { writ, server, redisEndpoint } = await startWrit(config, {
      env,
      logger,
      extraPrincipals: dev === undefined ? [] : devPrincipals(dev.identities),
      notifiers: [createConsoleNotifier((line) => io.stdout(`${line}\n`))],
      ...(dev !== undefined
        ? {
            slackUserIds: devSlackUserIds(
              dev.identities,
              parseDevSlackUsers(readEnv(io.env).WRIT_DEV_SLACK_USERS),
            ),
          }
        : {}),
    });

    io.stdout(
      [
        `writ dev listening on ${server.url}`,
        redisEndpoint === undefined
          ? `  store: embedded (in memory; requests are lost on restart)`
          : `  store: redis ${redisEndpoint} (shared with every writ on it)`,
        ...(server.metricsUrl !== undefined ? [`  metrics: ${server.metricsUrl}/metrics`] : []),
        `  policies: ${config.policies.dir} (${writ.policy.policyIds().length} loaded)`,
        `  audit log: ${auditLogDir(config, writ.auditFile?.dir)}`,
        ...(dev
          ? [
              `  demo identities and their keys: ${dev.path}`,
              "",
              ...tryItHints(server.url, dev.path, dev.identities),
            ]
          : []),
        "",
      ].join("\n"),
    );

    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    io.stderr("writ dev: shutting down\n");
    await server.stop();
    return 0;
  },
};
