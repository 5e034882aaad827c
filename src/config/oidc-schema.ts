import { z } from "zod";
import { PERSON_ID } from "../domain/principal.js";
import { personKey } from "../domain/review.js";

/**
 * A claim in a token, by name; `/` reaches into nested objects, as Kubernetes
 * service-account tokens need (`kubernetes.io/namespace`).
 */
export const CLAIM_PATH = /^[A-Za-z0-9_.:-]{1,64}(?:\/[A-Za-z0-9_.:-]{1,64}){0,4}$/;

/**
 * Refuses a list of people (or templates of them) that names one twice: ids
 * compare without case, so two spellings of one person are one entry.
 */
export function eachPersonOnce(entries: readonly string[], ctx: z.RefinementCtx): void {
  entries.forEach((entry, index) => {
    const first = entries.findIndex((other) => personKey(other) === personKey(entry));
    if (first !== index) {
      ctx.addIssue({
        code: "custom",
        path: [index],
        message: `names the same person as entry ${first} (ids compare without case)`,
      });
    }
  });
}

/** Literal text and `{claim/path}` placeholders, e.g. `gh:{repository}`. */
const TEMPLATE = /^(?:[A-Za-z0-9_.@+:/-]|\{[A-Za-z0-9_.:/-]{1,200}\})+$/;

/** Asymmetric signature algorithms only: no `none`, no shared-secret HMAC. */
export const OIDC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** https, or http to a loopback address (a test or local issuer). */
const secureUrl = z
  .string()
  .max(512)
  .refine((value) => {
    try {
      const url = new URL(value);
      if (url.username !== "" || url.password !== "" || url.hash !== "") return false;
      return (
        url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname))
      );
    } catch {
      return false;
    }
  }, "an https URL (http only for 127.0.0.1, localhost or [::1]), without credentials or fragment");

const audience = z.string().min(1).max(256);
const claimValue = z.string().min(1).max(256);
const claimPath = z.string().regex(CLAIM_PATH, "a claim name, with / for nested claims");

/** The literal text before the first placeholder of a template. */
export function templatePrefix(template: string): string {
  const brace = template.indexOf("{");
  return brace === -1 ? template : template.slice(0, brace);
}

/** The claim paths a template's placeholders name. */
export function templateClaims(template: string): string[] {
  return [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1] ?? "");
}

const template = (what: string) =>
  z
    .string()
    .min(1)
    .max(256)
    .regex(
      TEMPLATE,
      `${what}: literal text (letters, digits, _ . @ + : / -) and {claim} placeholders`,
    )
    .refine(
      (value) => templateClaims(value).every((path) => CLAIM_PATH.test(path)),
      "each {placeholder} names a claim, with / for nested claims",
    )
    .superRefine((value, ctx) => {
      // With nothing between them, "ab" + "c" and "a" + "bc" fill the template
      // alike: two different workloads (or people) would get one id.
      const adjacent = /\{[^}]*\}\{[^}]*\}/.exec(value);
      if (adjacent !== null) {
        ctx.addIssue({
          code: "custom",
          message: `${adjacent[0]} has nothing between its placeholders, so different claim values can make the same id; put a separator the claims cannot contain between them, e.g. {a}/{b}`,
        });
      }
    });

/** How a verified token becomes an agent. */
const OidcAgentMapping = z.strictObject({
  /**
   * The agent id, e.g. `gh:{repository}`. It must start with a literal prefix
   * ending in `:`; configured key agents cannot contain `:`, so a token can
   * never take the id of a key agent, nor of another issuer's agents.
   */
  id: template("agent.id").refine(
    (value) => /^[A-Za-z0-9][A-Za-z0-9_.@+-]*:$/.test(templatePrefix(value)),
    'must start with a literal prefix ending in ":", e.g. "gh:{repository}"',
  ),
  /**
   * The accountable human, who never counts toward the agent's approvals: a
   * fixed person id (`alice`) or a template (`{actor}`).
   */
  owner: template("agent.owner"),
  /**
   * Whom the agent may act for (`on_behalf_of`): fixed person ids (`alice`)
   * and templates (`{actor}`). A request naming anyone else is refused.
   * Absent, the agent may name anyone; empty, nobody.
   */
  acts_for: z
    .array(
      template("agent.acts_for").refine(
        (value) => templateClaims(value).length > 0 || PERSON_ID.test(value),
        "a fixed entry is a person id: letters, digits and _ . @ + - (at most 128)",
      ),
    )
    .max(100)
    .superRefine(eachPersonOnce)
    .optional(),
  /** Attributes for policies (`principal.<name>`), each read from a claim. */
  attributes: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), claimPath)
    .refine((attributes) => !Object.hasOwn(attributes, "owner"), {
      message: "owner is reserved: principal.owner is always the agent's owner",
    })
    .refine((attributes) => !Object.hasOwn(attributes, "oidc_issuer"), {
      message: "oidc_issuer is reserved: writ sets it to the token's issuer",
    })
    .default({}),
});

/** One trusted workload-identity issuer (GitHub Actions, a Kubernetes cluster, …). */
export const OidcIssuerConfig = z.strictObject({
  /** Compared exactly with the token's `iss`. */
  issuer: secureUrl,
  /** Accepted `aud` values; the token must carry one of them. */
  audience: z.union([audience, z.array(audience).min(1).max(10)]),
  /** Where the issuer's keys are; default: `jwks_uri` from its discovery document. */
  jwks_uri: secureUrl.optional(),
  /** Accepted signature algorithms (asymmetric only). */
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(["RS256", "ES256"]),
  /** Allowed clock skew for `exp`, `nbf` and `iat`, at most 60 seconds. */
  clock_tolerance_seconds: z.number().int().min(0).max(60).default(10),
  agent: OidcAgentMapping,
  /**
   * Claims the token must carry, each with one of the listed values. At least
   * one: a public issuer such as GitHub signs tokens for every repository in
   * the world, so trusting the issuer alone would admit all of them.
   */
  require: z
    .record(claimPath, z.union([claimValue, z.array(claimValue).min(1).max(50)]))
    .refine((rules) => Object.keys(rules).length > 0, {
      message:
        "name at least one claim the token must carry, e.g. repository_owner: your-org (a public issuer signs tokens for everyone)",
    }),
});

export type OidcIssuerSettings = z.infer<typeof OidcIssuerConfig>;

/** The trusted issuers: distinct issuers, distinct agent id prefixes. */
export const OidcIssuersConfig = z
  .array(OidcIssuerConfig)
  .max(20)
  .superRefine((issuers, ctx) => {
    const seen = new Map<string, number>();
    const prefixes = new Map<string, number>();
    issuers.forEach((entry, index) => {
      if (seen.has(entry.issuer)) {
        ctx.addIssue({
          code: "custom",
          path: [index, "issuer"],
          message: `is listed twice (also at ${seen.get(entry.issuer)})`,
        });
      }
      seen.set(entry.issuer, index);
      // Ids from two issuers must never coincide: no prefix may start another.
      const prefix = templatePrefix(entry.agent.id);
      for (const [other, otherIndex] of prefixes) {
        if (prefix.startsWith(other) || other.startsWith(prefix)) {
          ctx.addIssue({
            code: "custom",
            path: [index, "agent", "id"],
            message: `has the prefix "${prefix}", which overlaps "${other}" of issuer ${otherIndex}; give each issuer its own`,
          });
        }
      }
      prefixes.set(prefix, index);
    });
  });
