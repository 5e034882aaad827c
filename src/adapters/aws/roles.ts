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

/**
 * Whether `text` matches `pattern`, where `*` matches any run of characters.
 * Greedy two-pointer matching, O(pattern × text) at worst: the resource comes
 * from an agent, and a backtracking regex of several `.*` on it can block the
 * event loop for minutes.
 */
export function wildcardMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** The account an ARN names (its fifth field), if any. */
function arnAccount(resource: string): string | undefined {
  const account = resource.split(":")[4];
  return account === undefined || account === "" ? undefined : account;
}

export function compileRoutes(mappings: readonly AwsRoleMapping[]): AwsRoleRoute[] {
  return mappings.map((mapping) => {
    return {
      ...mapping,
      matches: (resource) =>
        wildcardMatch(mapping.resourcePattern, resource) &&
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
