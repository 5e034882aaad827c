import { z } from "zod";
import { PERSON_ID } from "../domain/principal.js";
import { MAX_APPROVAL_TIMEOUT_SECONDS, MAX_TTL_SECONDS } from "../domain/request.js";
import { personKey } from "../domain/review.js";
import { AwsConfig } from "./aws-schema.js";
import { McpConfig } from "./mcp-schema.js";
import {
  NotificationsConfig,
  SlackConfig,
  slackUserId,
  TeamsConfig,
  WebhookConfig,
} from "./notify-schema.js";
import { eachPersonOnce, OidcIssuersConfig } from "./oidc-schema.js";
import { MetricsConfig, RateLimitsConfig, RedisConfig, StoreConfig } from "./operations-schema.js";

const id = z.string().regex(PERSON_ID, "letters, digits and _ . @ + - (at most 128)");
const keySha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "the key's SHA-256 as 64 lowercase hex characters (see `writ keygen`)");
const seconds = (min: number, max: number) => z.number().int().min(min).max(max);

/** The people an agent may name as `on_behalf_of`. */
const actsForIds = z.array(id).max(100).superRefine(eachPersonOnce);

/** One agent: who it is, the human who owns it, and attributes for policies. */
const AgentConfig = z.strictObject({
  id,
  key_sha256: keySha256,
  owner: id,
  attributes: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(256))
    .default({}),
  /**
   * Whom the agent may act for: a request naming anyone else as `on_behalf_of`
   * is refused. Absent, the agent may name anyone; empty, nobody.
   */
  acts_for: actsForIds.optional(),
});
/** One reviewer: a person, and the groups policies may name. */
const ReviewerConfig = z.strictObject({
  id,
  key_sha256: keySha256,
  groups: z.array(id).min(1),
  /** The reviewer's Slack account: the only way a Slack user counts as this reviewer. */
  slack_user_id: slackUserId.optional(),
  /**
   * Another name for the same person: an owner or `on_behalf_of` equal to it is
   * this reviewer (rule 2). Matched against Slack's confirmed email only with
   * `slack.match_by_email`.
   */
  email: z.email().max(254).optional(),
});
const AuditorConfig = z.strictObject({ id, key_sha256: keySha256 });
const ResourceServerConfig = z.strictObject({
  id,
  key_sha256: keySha256,
  audience: z.string().min(1).max(256),
});

export const IdentitiesConfig = z.strictObject({
  agents: z.array(AgentConfig).default([]),
  reviewers: z.array(ReviewerConfig).default([]),
  auditors: z.array(AuditorConfig).default([]),
  resource_servers: z.array(ResourceServerConfig).default([]),
  /** Workload-identity issuers whose tokens authenticate agents (see docs/oidc.md). */
  oidc: OidcIssuersConfig.default([]),
});

/**
 * The whole configuration: one file (YAML or JSON), validated at start. Every
 * field is documented in docs/configuration.md.
 */
const WritConfigObject = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65_535).default(8787),
      max_body_bytes: z.number().int().min(1024).max(1_048_576).default(65_536),
      shutdown_grace_seconds: seconds(0, 300).default(10),
      /**
       * `writ serve` only: processes that serve the API on the one port, under a
       * primary that keeps the replica's audit log and runs its background work.
       */
      workers: z.number().int().min(1).max(64).default(1),
    })
    .prefault({}),
  /** Where writ keeps keys, the audit log and dev identities. */
  data_dir: z.string().min(1).default(".writ"),
  /** The JWT `iss` claim. */
  issuer: z.string().min(1).max(256).default("writ"),
  policies: z
    .strictObject({
      dir: z.string().min(1).default("policies"),
      watch: z.boolean().default(true),
    })
    .prefault({}),
  requests: z
    .strictObject({
      default_ttl_seconds: seconds(30, MAX_TTL_SECONDS).default(300),
      approval_timeout_seconds: seconds(30, MAX_APPROVAL_TIMEOUT_SECONDS).default(900),
      collect_window_seconds: seconds(10, 86_400).default(300),
      sweep_interval_seconds: seconds(1, 3600).default(5),
      /** Long-polls one principal may hold at once in each process (`too_many_waits` beyond). */
      max_waits_per_principal: z.number().int().min(1).max(10_000).default(100),
    })
    .prefault({}),
  jwt: z
    .strictObject({
      algorithm: z.enum(["EdDSA", "ES256"]).default("EdDSA"),
      /** Key ring file; default `<data_dir>/keys/jwt.json`. */
      keys_file: z.string().min(1).optional(),
    })
    .prefault({}),
  audit: z
    .strictObject({
      /** Log directory; default `<data_dir>/audit`. */
      dir: z.string().min(1).optional(),
      /** Ed25519 checkpoint signing key, apart from the JWT keys; default `<data_dir>/keys/checkpoint.json`. */
      checkpoint_key_file: z.string().min(1).optional(),
      /** A signed checkpoint after this many new entries. */
      checkpoint_every_entries: z.number().int().min(1).max(1_000_000).default(1000),
      /** A signed checkpoint at least this often while entries are being added. */
      checkpoint_every_seconds: seconds(1, 86_400).default(60),
      /** A new segment file once the current one reaches this size. */
      segment_max_bytes: z
        .number()
        .int()
        .min(4096)
        .max(2 ** 40)
        .default(64 * 1024 * 1024),
    })
    .prefault({}),
  /** The web console at `/console` (see docs/console.md). */
  console: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** A console session ends after this long without a request. */
      idle_timeout_seconds: seconds(60, 86_400).default(1800),
      /** A console session ends this long after sign-in, whatever its activity. */
      session_max_seconds: seconds(300, 604_800).default(28_800),
      /**
       * Session cookies only over HTTPS (`Secure`, named `__Host-…`). Unset: on
       * under `writ serve`, off under `writ dev` (plain http on loopback).
       */
      secure_cookies: z.boolean().optional(),
    })
    .prefault({}),
  identities: IdentitiesConfig.prefault({}),
  /** The state store: embedded memory (dev) or Redis (production). */
  store: StoreConfig.prefault({}),
  /** The Redis deployment (see docs/operations.md). */
  redis: RedisConfig.prefault({}),
  /** Per-agent request limits and per-resource-server consume limits. */
  rate_limits: RateLimitsConfig.prefault({}),
  /** The Prometheus `/metrics` endpoint, on its own listener. */
  metrics: MetricsConfig.prefault({}),
  /** The MCP server on the HTTP API (see docs/mcp.md). */
  mcp: McpConfig.prefault({}),
  /** AWS credentials; absent, writ issues none (see docs/aws.md). */
  aws: AwsConfig.optional(),
  /** Slack approvals (see docs/slack.md); on when the signing secret and bot token are set. */
  slack: SlackConfig.optional(),
  /** A Microsoft Teams channel told about requests (see docs/teams.md). */
  teams: TeamsConfig.optional(),
  /** Signed webhooks receiving every event (see docs/webhooks.md). */
  webhooks: z.array(WebhookConfig).max(20).default([]),
  /** Settings shared by every notification channel. */
  notifications: NotificationsConfig.prefault({}),
});

export const WritConfigSchema = WritConfigObject.superRefine((config, ctx) => {
  // writ's own credentials must never authenticate an agent.
  config.identities.oidc.forEach((entry, index) => {
    if (entry.issuer === config.issuer) {
      ctx.addIssue({
        code: "custom",
        path: ["identities", "oidc", index, "issuer"],
        message: "is writ's own issuer; trust another issuer",
      });
    }
  });
  // Person ids compare without case (rule 2 counts people, not spellings), so two
  // reviewers under "bob" and "Bob" would be one person approving twice. A
  // reviewer's email names them too (rule 2 knows them by it), so no other
  // reviewer may be known by it, as id or as email.
  const people = new Map<string, { index: number; field: "id" | "email" }>();
  config.identities.reviewers.forEach((reviewer, index) => {
    for (const field of ["id", "email"] as const) {
      const name = reviewer[field];
      if (name === undefined) continue;
      const first = people.get(personKey(name));
      if (first === undefined) people.set(personKey(name), { index, field });
      else if (first.index !== index) {
        ctx.addIssue({
          code: "custom",
          path: ["identities", "reviewers", index, field],
          message:
            field === "id" && first.field === "id"
              ? `names the same person as identities.reviewers.${first.index}.id (ids compare without case); give each reviewer one entry`
              : `names the same person as identities.reviewers.${first.index} (its ${first.field}; ids and emails compare without case); give each reviewer one entry`,
        });
      }
    }
  });
  // Limits are looked up by the exact id. An agent spelt here in another case
  // than its configured id would keep the default limit, so a throttle put on a
  // misbehaving agent would silently never apply.
  const agents = config.identities.agents;
  for (const limited of Object.keys(config.rate_limits.agents)) {
    if (agents.some((agent) => agent.id === limited)) continue;
    const index = agents.findIndex((agent) => personKey(agent.id) === personKey(limited));
    const agent = agents[index];
    if (agent === undefined) continue;
    ctx.addIssue({
      code: "custom",
      path: ["rate_limits", "agents", limited],
      message: `is spelt differently from identities.agents.${index}.id "${agent.id}"; limits apply to the exact id, so write "${agent.id}"`,
    });
  }
  const servers = config.identities.resource_servers;
  for (const limited of Object.keys(config.rate_limits.resource_servers)) {
    if (servers.some((server) => server.id === limited)) continue;
    const index = servers.findIndex((server) => personKey(server.id) === personKey(limited));
    const server = servers[index];
    if (server === undefined) continue;
    ctx.addIssue({
      code: "custom",
      path: ["rate_limits", "resource_servers", limited],
      message: `is spelt differently from identities.resource_servers.${index}.id "${server.id}"; limits apply to the exact id, so write "${server.id}"`,
    });
  }
});

export type WritConfig = z.infer<typeof WritConfigSchema>;
export type IdentitiesConfigInput = z.input<typeof IdentitiesConfig>;
