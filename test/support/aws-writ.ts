import type { Logger } from "../../src/ports/logger.js";
import { tempPolicies } from "../policy/temp-policies.js";
import { type FakeAws, startFakeAws, TEST_REGION } from "./fake-aws.js";
import { type ManualClock, startTestWrit, type TestWrit } from "./harness.js";

/** The role writ assumes for `arn:aws:s3:::reports/*` in these tests. */
export const REPORTS_ROLE = "arn:aws:iam::111122223333:role/writ-reports";
/** The inline policy writ keeps its denies in. */
export const REVOCATIONS = "writ-revocations";

const REPORTS_READ = `
@id("reports-read")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::reports/*" };
`;

/**
 * A fake AWS of its own and a test writ minting sessions from it for reads of
 * `arn:aws:s3:::reports/*` (policy `reports-read`, allowed at once), one SDK
 * attempt per call so that each injected failure fails one attempt.
 */
export async function startReportsAwsWrit(options: {
  clock: ManualClock;
  logger?: Logger;
}): Promise<{ fake: FakeAws; t: TestWrit; close(): Promise<void> }> {
  const { clock } = options;
  const fake = await startFakeAws({ now: () => clock.now() });
  const policies = await tempPolicies({ "aws.cedar": REPORTS_READ });
  const t = await startTestWrit(
    {
      aws: {
        region: TEST_REGION,
        revocation_policy_name: REVOCATIONS,
        roles: [{ resource_pattern: "arn:aws:s3:::reports/*", role_arn: REPORTS_ROLE }],
      },
      policies: { dir: policies.dir, watch: false },
    },
    {
      clock,
      awsClients: fake.clients({ maxAttempts: 1 }),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
    },
  );
  return {
    fake,
    t,
    async close() {
      await t.close();
      await fake.close();
      await policies.remove();
    },
  };
}
