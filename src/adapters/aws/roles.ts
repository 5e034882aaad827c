import { WritError } from "../../domain/errors.js";

/** One configured mapping from resources to the role writ assumes for them. */
export interface AwsRoleMapping {
  /** Only ARNs naming this account match. */
  readonly account?: string;
  /** `*` matches any run of characters; everything else matches itself. */
  readonly resourcePattern: string;
  readonly roleArn: string;
  readonly externalId?: string;
}

/** A mapping with its pattern compiled. */
export interface AwsRoleRoute extends AwsRoleMapping {
  readonly matches: (resource: string) => boolean;
}

function globPattern(pattern: string): RegExp {
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`, "s");
}

/** The account an ARN names (its fifth field), if any. */
function arnAccount(resource: string): string | undefined {
  const account = resource.split(":")[4];
  return account === undefined || account === "" ? undefined : account;
}

export function compileRoutes(mappings: readonly AwsRoleMapping[]): AwsRoleRoute[] {
  return mappings.map((mapping) => {
    const pattern = globPattern(mapping.resourcePattern);
    return {
      ...mapping,
      matches: (resource) =>
        pattern.test(resource) &&
        (mapping.account === undefined || arnAccount(resource) === mapping.account),
    };
  });
}

/** The first route serving `resource`; throws `aws_role_not_configured` if none does. */
export function routeFor(routes: readonly AwsRoleRoute[], resource: string): AwsRoleRoute {
  const route = routes.find((r) => r.matches(resource));
  if (route === undefined) {
    throw new WritError(
      "aws_role_not_configured",
      "No AWS role is configured for this resource, so writ cannot issue credentials for it.",
    );
  }
  return route;
}
