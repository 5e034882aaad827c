import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, loadConfigFile, parseConfig, readEnv } from "../../config/load.js";
import type { WritConfig } from "../../config/schema.js";
import { PolicyLoadError } from "../../policy/policy-set.js";
import {
  PolicyTestFileError,
  type PolicyTestFileErrorCode,
  type PolicyTestResult,
  runPolicyTests,
} from "../../policy/policy-test.js";
import { type Command, EXIT } from "../command.js";
import { printJson } from "./client-context.js";

/**
 * Why `--json` could not run the cases at all, as `error.code`: the
 * configuration file does not load, the policies do not load, or the cases
 * (their directory, a case file) do not.
 */
type PolicyTestErrorCode = "config_invalid" | "policies_invalid" | PolicyTestFileErrorCode;

export const policyTestCommand: Command = {
  path: ["policy", "test"],
  summary: "Check the policies against their test cases (policies/tests/*.json)",
  help: `
Usage: writ policy test [--policies <dir>] [--tests <dir>] [--config <file>] [--json]

Loads the Cedar policies in <dir> and runs every case in <tests> (default
<dir>/tests): principal, action, resource, context and the expected effect.
Exits 0 when every case holds, 1 on a mismatch or a broken policy or case file.
With --json, every outcome is one JSON object on stdout, also when the cases
cannot run: {"ok":false,"error":{"code":…,"message":…},…}, where code is
config_invalid, policies_invalid, policy_tests_missing or
policy_case_file_invalid.

The configuration file is found as writ serve finds it: --config, else
WRIT_CONFIG. Its policies.dir is the default <dir> (else ./policies; --policies
wins over both), and its requests.default_ttl_seconds and
requests.approval_timeout_seconds are the terms of a policy that sets none, as
the server uses them (else writ's defaults). The output names the directory and
the configuration file used.

Environment:
  WRIT_CONFIG         The configuration file, if --config is not given
`,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        policies: { type: "string" },
        tests: { type: "string" },
        config: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    // The same file writ serve would read, so the cases run against the set and
    // the defaults the server in this environment decides with.
    const configFlag = values.config;
    const configFile = configFlag ?? readEnv(io.env).WRIT_CONFIG;
    const facts: {
      policies_dir: string | null;
      config: string | null;
      defaults: { ttl_seconds: number; approval_timeout_seconds: number } | null;
    } = {
      policies_dir: values.policies === undefined ? null : resolve(values.policies),
      config: configFile === undefined ? null : resolve(configFile),
      defaults: null,
    };
    // A script reading --json gets one JSON object whatever happens, with a
    // stable code for what went wrong; people get the message on stderr.
    const fail = (code: PolicyTestErrorCode, error: Error & { file?: string | undefined }) => {
      if (values.json) {
        const file = error.file === undefined ? {} : { file: error.file };
        printJson(io, { ok: false, error: { code, message: error.message, ...file }, ...facts });
      } else {
        io.stderr(`writ policy test: ${error.message}\n`);
      }
      return EXIT.failed;
    };
    let config: WritConfig;
    try {
      config = configFile !== undefined ? await loadConfigFile(configFile) : parseConfig({});
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return fail("config_invalid", error);
    }
    const policiesDir = resolve(values.policies ?? config.policies.dir);
    const defaults = {
      ttlSeconds: config.requests.default_ttl_seconds,
      approvalTimeoutSeconds: config.requests.approval_timeout_seconds,
    };
    facts.policies_dir = policiesDir;
    facts.defaults = {
      ttl_seconds: defaults.ttlSeconds,
      approval_timeout_seconds: defaults.approvalTimeoutSeconds,
    };
    if (!values.json) {
      const dirSource =
        values.policies !== undefined
          ? "--policies"
          : configFile !== undefined
            ? "policies.dir of the configuration"
            : "the default, ./policies";
      const configSource =
        configFile === undefined
          ? "none (writ's defaults)"
          : `${resolve(configFile)} (${configFlag !== undefined ? "--config" : "WRIT_CONFIG"})`;
      io.stdout(
        `policies: ${policiesDir} (${dirSource})\n` +
          `configuration: ${configSource}; TTL ${defaults.ttlSeconds} s and approval timeout ` +
          `${defaults.approvalTimeoutSeconds} s where a policy sets none\n`,
      );
    }
    let result: PolicyTestResult;
    try {
      result = await runPolicyTests({
        policiesDir,
        defaults,
        ...(values.tests !== undefined ? { testsDir: values.tests } : {}),
      });
    } catch (error) {
      if (error instanceof PolicyLoadError) return fail("policies_invalid", error);
      if (error instanceof PolicyTestFileError) return fail(error.code, error);
      throw error;
    }
    if (values.json) {
      printJson(io, {
        ok: result.failed.length === 0,
        ...facts,
        passed: result.passed,
        failed: result.failed,
      });
    } else {
      for (const f of result.failed) {
        io.stdout(
          `FAIL ${f.file} › ${f.name}\n  expected: ${f.expected}\n  actual:   ${f.actual}\n`,
        );
      }
      io.stdout(`${result.passed} passed, ${result.failed.length} failed\n`);
    }
    return result.failed.length === 0 ? EXIT.ok : EXIT.failed;
  },
};
