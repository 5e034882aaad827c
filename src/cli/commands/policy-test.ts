import { parseArgs } from "node:util";
import { loadConfigFile, parseConfig } from "../../config/load.js";
import { PolicyLoadError } from "../../policy/policy-set.js";
import { PolicyTestFileError, runPolicyTests } from "../../policy/policy-test.js";
import { type Command, EXIT } from "../command.js";

export const policyTestCommand: Command = {
  path: ["policy", "test"],
  summary: "Check the policies against their test cases (policies/tests/*.json)",
  help: `
Usage: writ policy test [--policies <dir>] [--tests <dir>] [--config <file>] [--json]

Loads the Cedar policies in <dir> (default: policies.dir of the configuration
file when given, else ./policies) and runs every case in <tests> (default
<dir>/tests): principal, action, resource, context and the expected effect.
Exits 0 when every case holds, 1 on a mismatch or a broken policy or case file.
TTL and approval-timeout defaults come from the configuration file when given
(else writ's defaults), as the server uses them.
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
    const config = values.config ? await loadConfigFile(values.config) : parseConfig({});
    try {
      const result = await runPolicyTests({
        // The directory the server would load, unless told otherwise: testing
        // ./policies while the configuration names another would pass on the wrong set.
        policiesDir: values.policies ?? config.policies.dir,
        defaults: {
          ttlSeconds: config.requests.default_ttl_seconds,
          approvalTimeoutSeconds: config.requests.approval_timeout_seconds,
        },
        ...(values.tests !== undefined ? { testsDir: values.tests } : {}),
      });
      if (values.json) {
        io.stdout(`${JSON.stringify({ passed: result.passed, failed: result.failed })}\n`);
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
