import { describe, expect, it } from "vitest";
import { withDevAwsRole } from "../../src/config/dev-aws.js";
import { ConfigError, parseConfig, readEnv } from "../../src/config/load.js";

const ROLE = "arn:aws:iam::111122223333:role/writ-targets/reports";

function problemWith(aws: unknown): string {
  try {
    parseConfig({ aws }, "writ.yaml");
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("the configuration was accepted");
}

describe("the aws configuration", () => {
  it("is absent unless configured, and fills its defaults", () => {
    expect(parseConfig({}).aws).toBeUndefined();
    expect(
      parseConfig({
        aws: { roles: [{ resource_pattern: "arn:aws:s3:::reports/*", role_arn: ROLE }] },
      }).aws,
    ).toEqual({
      roles: [{ resource_pattern: "arn:aws:s3:::reports/*", role_arn: ROLE }],
      session_duration_seconds: 900,
      revocation_policy_name: "writ-revocations",
    });
  });

  it("names the bad key", () => {
    const role = { resource_pattern: "*", role_arn: ROLE };
    expect(problemWith({ roles: [] })).toMatch(/aws\.roles: name at least one role/);
    expect(problemWith({ roles: [{ ...role, role_arn: "arn:aws:iam::1:user/x" }] })).toMatch(
      /aws\.roles\.0\.role_arn: an IAM role ARN/,
    );
    expect(problemWith({ roles: [{ ...role, account: "12" }] })).toMatch(
      /aws\.roles\.0\.account: a 12-digit AWS account id/,
    );
    expect(problemWith({ roles: [{ ...role, external_id: "x" }] })).toMatch(
      /aws\.roles\.0\.external_id/,
    );
    expect(problemWith({ roles: [{ ...role, resource_pattern: "a b" }] })).toMatch(
      /aws\.roles\.0\.resource_pattern/,
    );
    expect(problemWith({ roles: [role], session_duration_seconds: 899 })).toMatch(
      /aws\.session_duration_seconds/,
    );
    expect(problemWith({ roles: [role], region: "mars" })).toMatch(/aws\.region: an AWS region/);
    expect(problemWith({ roles: [role], revocation_policy_name: "a b" })).toMatch(
      /aws\.revocation_policy_name/,
    );
    expect(problemWith({ roles: [role], endpoint: "http://x" })).toMatch(/aws/);
  });

  it("maps every AWS request to WRIT_AWS_ROLE_ARN in writ dev", () => {
    const env = readEnv({ WRIT_AWS_ROLE_ARN: ROLE, AWS_SECRET_ACCESS_KEY: "not read" });
    expect(env).toEqual({ WRIT_AWS_ROLE_ARN: ROLE });
    const config = withDevAwsRole(parseConfig({}), env.WRIT_AWS_ROLE_ARN);
    expect(config.aws?.roles).toEqual([{ resource_pattern: "*", role_arn: ROLE }]);
    expect(withDevAwsRole(parseConfig({}), undefined).aws).toBeUndefined();
    expect(() => withDevAwsRole(parseConfig({}), "not-a-role")).toThrow(
      /WRIT_AWS_ROLE_ARN: not an IAM role ARN/,
    );
  });
});
