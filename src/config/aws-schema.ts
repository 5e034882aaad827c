import { z } from "zod";

/** An IAM role ARN in any partition: `arn:aws:iam::111122223333:role/path/name`. */
export const ROLE_ARN =
  /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;

/**
 * Which role writ assumes for which resources. Entries are tried in order; the
 * first whose `resource_pattern` (and `account`, if set) matches the requested
 * resource is used. No match: the request is refused with `aws_role_not_configured`.
 */
export const AwsRoleConfig = z.strictObject({
  /** Only resources whose ARN names this account (its fifth field) match. */
  account: z
    .string()
    .regex(/^\d{12}$/, "a 12-digit AWS account id")
    .optional(),
  /** The resource ARNs this role serves; `*` matches any run of characters. */
  resource_pattern: z
    .string()
    .min(1)
    .max(2048)
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces, e.g. arn:aws:s3:::reports/*"),
  /** The role writ assumes (its trust policy must let writ's own identity assume it). */
  role_arn: z.string().regex(ROLE_ARN, "an IAM role ARN, e.g. arn:aws:iam::111122223333:role/app"),
  /** The `ExternalId` the role's trust policy requires, if any. */
  external_id: z
    .string()
    .regex(/^[\w+=,.@:/-]{2,1224}$/, "2-1224 characters of letters, digits and _+=,.@:/-")
    .optional(),
});

/**
 * AWS credentials (STS `AssumeRole` with a session policy per request). Endpoints,
 * region and writ's own credentials follow the AWS SDK's conventions
 * (`AWS_REGION`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_IAM`, the default
 * credential chain); see docs/aws.md.
 */
export const AwsConfig = z.strictObject({
  /** The STS region; default: the SDK's (`AWS_REGION`, then the shared config file). */
  region: z
    .string()
    .regex(/^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/, "an AWS region, e.g. eu-west-1")
    .optional(),
  roles: z.array(AwsRoleConfig).min(1, "name at least one role"),
  /**
   * The longest STS session writ asks for. Sessions last at least 900 s (the STS
   * minimum) and at most this, and never beyond the role's own maximum.
   */
  session_duration_seconds: z.number().int().min(900).max(43_200).default(900),
  /** The inline role policy that holds writ's denies of ended sessions. */
  revocation_policy_name: z
    .string()
    .regex(/^[\w+=,.@-]{1,128}$/, "1-128 characters of letters, digits and _+=,.@-")
    .default("writ-revocations"),
});

export type AwsConfigValue = z.infer<typeof AwsConfig>;
