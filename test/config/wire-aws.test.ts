import { afterEach, describe, expect, it } from "vitest";
import type { AwsConfigValue } from "../../src/config/aws-schema.js";
import { ConfigError } from "../../src/config/load.js";
import { createAwsCredentials } from "../../src/config/wire-aws.js";
import { capturingLogger } from "../support/captured-log.js";
import { type FakeAws, startFakeAws, TEST_REGION } from "../support/fake-aws.js";
import { ManualClock } from "../support/harness.js";

// writ on ECS, EKS or EC2 signs with a role session, and a role assumed from a
// role session (role chaining) lasts at most an hour whatever the role allows.

const ROLE_SESSION = "arn:aws:sts::111122223333:assumed-role/writ-broker/i-0abc";
const REPORTS_ROLE = "arn:aws:iam::111122223333:role/writ-reports";

const fakes: FakeAws[] = [];

afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake.close();
});

function awsConfig(sessionDurationSeconds: number): AwsConfigValue {
  return {
    region: TEST_REGION,
    roles: [{ resource_pattern: "arn:aws:s3:::reports/*", role_arn: REPORTS_ROLE }],
    session_duration_seconds: sessionDurationSeconds,
    revocation_policy_name: "writ-revocations",
  };
}

/** A fake AWS whose test key belongs to `callerArn`, and writ's AWS wiring started against it. */
async function start(
  callerArn: string,
  sessionDurationSeconds: number,
  before: (fake: FakeAws) => void = () => {},
) {
  const fake = await startFakeAws({ callerArn });
  fakes.push(fake);
  before(fake);
  const { logger, lines } = capturingLogger();
  const created = createAwsCredentials(awsConfig(sessionDurationSeconds), {
    clock: new ManualClock(),
    logger,
    clients: fake.clients({ maxAttempts: 1 }),
  });
  const identityCalls = () => fake.calls.filter((c) => c.action === "GetCallerIdentity").length;
  return { created, lines, identityCalls };
}

describe("AWS session length and role chaining", () => {
  it("refuses to start when writ signs as a role session and sessions may pass an hour", async () => {
    const { created } = await start(ROLE_SESSION, 7200);
    const error = await created.then(
      (aws) => {
        aws?.close();
        return undefined;
      },
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/aws\.session_duration_seconds/);
    expect((error as ConfigError).message).toMatch(/3600/);
    expect((error as ConfigError).message).toContain(ROLE_SESSION);
  });

  it("starts when writ signs as an IAM user, whatever the session length", async () => {
    const { created, identityCalls } = await start("arn:aws:iam::111122223333:user/writ", 43_200);
    (await created)?.close();
    expect(identityCalls()).toBe(1);
  });

  it("asks nothing at start when sessions fit in an hour", async () => {
    const { created, identityCalls } = await start(ROLE_SESSION, 3600);
    (await created)?.close();
    expect(identityCalls()).toBe(0);
  });

  it("starts with a warning when it cannot tell who it is", async () => {
    const { created, lines } = await start(ROLE_SESSION, 7200, (fake) =>
      fake.failNext("GetCallerIdentity", "ServiceUnavailable"),
    );
    (await created)?.close();
    expect(lines).toContainEqual(
      expect.objectContaining({ level: "warn", message: expect.stringMatching(/role chaining/) }),
    );
  });
});
