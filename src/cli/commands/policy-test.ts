import { parseArgs } from "node:util";
import { PolicyLoadError } from "../../policy/policy-set.js";
import { PolicyTestFileError, runPolicyTests } from "../../policy/policy-test.js";
import { type Command, EXIT } from "../command.js";

export const policyTestCommand: Command = {
  path: ["policy", "test"],
  summary: "Check the policies against their test cases (policies/tests/*.json)",
  help: `
Usage: writ policy test [--policies <dir>] [--tests <dir>] [--json]

Loads the Cedar policies in <dir> (default ./policies) and runs every case in
<tests> (default <dir>/tests): principal, action, resource, context and the
expected effect. Exits 0 when every case holds, 1 on a mismatch or a broken
policy or case file.
`,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: {
        policies: { type: "string", default: "policies" },
        tests: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    try {
      const result = await runPolicyTests({
        policiesDir: values.policies,
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
