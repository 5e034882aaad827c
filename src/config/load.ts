import { readFile } from "node:fs/promises";
import { parse as parseYaml, YAMLError } from "yaml";
import type { ZodError } from "zod";
import { type WritConfig, WritConfigSchema } from "./schema.js";

/** A configuration that cannot be used; the message names the key and what is expected. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function describe(error: ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.map(String).join(".") : "(top level)";
    return `  ${key}: ${issue.message}`;
  });
  return `Invalid configuration in ${source}:\n${lines.join("\n")}`;
}

/** Validates a parsed configuration object. */
export function parseConfig(raw: unknown, source = "configuration"): WritConfig {
  const result = WritConfigSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(describe(result.error, source));
  return result.data;
}

/** Reads and validates a YAML or JSON configuration file. */
export async function loadConfigFile(path: string): Promise<WritConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      `Cannot read the configuration file ${path}: ${(error as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
  let raw: unknown;
  try {
    // Warnings are not printed: the parser quotes the line, which may hold a secret.
    raw = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text, { logLevel: "error" });
  } catch (error) {
    throw new ConfigError(parseProblem(path, error));
  }
  return parseConfig(raw, path);
}

/**
 * Where the file fails to parse, never what it says there: both parsers quote the
 * source around the error, and that line may hold a Slack secret or token.
 */
function parseProblem(path: string, error: unknown): string {
  if (path.endsWith(".json")) return `The configuration file ${path} is not valid JSON`;
  const where = error instanceof YAMLError ? error.linePos?.[0] : undefined;
  if (error instanceof YAMLError && where !== undefined) {
    return `The configuration file ${path} is not valid YAML: ${error.code} at line ${where.line}, column ${where.col}`;
  }
  return `The configuration file ${path} is not valid YAML`;
}

/** The variables writ reads. `config/` is the only place that touches `process.env`. */
export interface WritEnv {
  /** Configuration file for `writ dev` / `writ serve`. */
  WRIT_CONFIG?: string;
  /** Base URL of a running writ, for client commands. */
  WRIT_URL?: string;
  /** The caller's key, for client commands. */
  WRIT_KEY?: string;
  /** `writ dev` only: the IAM role every AWS request maps to (see docs/aws.md). */
  WRIT_AWS_ROLE_ARN?: string;
  /** Slack's signing secret; with SLACK_BOT_TOKEN turns Slack on (see docs/slack.md). */
  SLACK_SIGNING_SECRET?: string;
  /** The Slack bot token (`xoxb-…`). */
  SLACK_BOT_TOKEN?: string;
  /** The Slack app-level token (`xapp-…`), for Socket Mode. */
  SLACK_APP_TOKEN?: string;
  /** Slack Web API base URL, for proxies and tests. */
  WRIT_SLACK_API_URL?: string;
  /** The Slack channel approval messages go to when no group route applies. */
  WRIT_SLACK_CHANNEL?: string;
  /** `writ dev` only: Slack user ids of the demo reviewers, in order, comma-separated. */
  WRIT_DEV_SLACK_USERS?: string;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): WritEnv {
  const out: WritEnv = {};
  if (env.WRIT_CONFIG) out.WRIT_CONFIG = env.WRIT_CONFIG;
  if (env.WRIT_URL) out.WRIT_URL = env.WRIT_URL;
  if (env.WRIT_KEY) out.WRIT_KEY = env.WRIT_KEY;
  if (env.WRIT_AWS_ROLE_ARN) out.WRIT_AWS_ROLE_ARN = env.WRIT_AWS_ROLE_ARN;
  if (env.SLACK_SIGNING_SECRET) out.SLACK_SIGNING_SECRET = env.SLACK_SIGNING_SECRET;
  if (env.SLACK_BOT_TOKEN) out.SLACK_BOT_TOKEN = env.SLACK_BOT_TOKEN;
  if (env.SLACK_APP_TOKEN) out.SLACK_APP_TOKEN = env.SLACK_APP_TOKEN;
  if (env.WRIT_SLACK_API_URL) out.WRIT_SLACK_API_URL = env.WRIT_SLACK_API_URL;
  if (env.WRIT_SLACK_CHANNEL) out.WRIT_SLACK_CHANNEL = env.WRIT_SLACK_CHANNEL;
  if (env.WRIT_DEV_SLACK_USERS) out.WRIT_DEV_SLACK_USERS = env.WRIT_DEV_SLACK_USERS;
  return out;
}
