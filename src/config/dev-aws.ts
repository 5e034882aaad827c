import { AwsConfig } from "./aws-schema.js";
import { ConfigError } from "./load.js";
import type { WritConfig } from "./schema.js";

/**
 * `writ dev` with `WRIT_AWS_ROLE_ARN`: every AWS request maps to that one role,
 * so the demo policies' AWS actions can be tried without writing a config file.
 * Other `aws` settings of a configuration file are kept.
 */
export function withDevAwsRole(config: WritConfig, roleArn: string | undefined): WritConfig {
  if (roleArn === undefined) return config;
  const result = AwsConfig.safeParse({
    ...config.aws,
    roles: [{ resource_pattern: "*", role_arn: roleArn }],
  });
  if (!result.success) {
    throw new ConfigError(
      "WRIT_AWS_ROLE_ARN: not an IAM role ARN (e.g. arn:aws:iam::111122223333:role/writ-demo)",
    );
  }
  return { ...config, aws: result.data };
}
