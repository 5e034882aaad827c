import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfigFile, parseConfig, readEnv } from "../../config/load.js";
import { PolicyLoadError } from "../../policy/policy-set.js";
import { PolicyTestFileError, runPolicyTests } from "../../policy/policy-test.js";
import { type Command, EXIT } from "../command.js";

export const policyTestCommand: Command = {
  path: ["policy", "test"],
  summary: "Check the policies against their test cases (policies/tests/*.json)",
  help: `
Usage: writ policy test [--policies <dir>] [--tests <dir>] [--config <file>] [--json]

Loads the Cedar policies in <dir> and runs every case in <tests> (default
<dir>/tests): principal, action, resource, context and the expected effect.
Exits 0 when every case holds, 1 on a mismatch or a broken policy or case file.

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
    const config = configFile !== undefined ? await loadConfigFile(configFile) : parseConfig({});
    const policiesDir = resolve(values.policies ?? config.policies.dir);
    const defaults = {
      ttlSeconds: config.requests.default_ttl_seconds,
      approvalTimeoutSeconds: config.requests.approval_timeout_seconds,
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
    try {
      const result = await runPolicyTests({
        policiesDir,
        defaults,
        ...(values.tests !== undefined ? { testsDir: values.tests } : {}),
      });
      if (values.json) {
        const report = {
          policies_dir: policiesDir,
          config: configFile === undefined ? null : resolve(configFile),
          defaults: {
            ttl_seconds: defaults.ttlSeconds,
            approval_timeout_seconds: defaults.approvalTimeoutSeconds,
          },
          passed: result.passed,
          failed: result.failed,
        };
        io.stdout(`${JSON.stringify(report)}\n`);
      } else {
        for (const f of result.failed) {
          io.stdout(
            `FAIL ${f.file} › ${f.name}\n  expected: ${f.expected}\n  actual:   ${f.actual}\n`,
          );
        }
        io.stdout(`${result.passed} passed, ${result.failed.length} failed\n`);
      }
      return result.failed.length === 0 ? EXIT.ok : EXIT.failed;
    } catch (error) {
      if (error instanceof PolicyLoadError || error instanceof PolicyTestFileError) {
        io.stderr(`writ policy test: ${error.message}\n`);
        return EXIT.failed;
      }
      throw error;
    }
  },
};
