import { z } from "zod";

const id = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/, "letters, digits and _ . @ + - (at most 128)");
const keySha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "the key's SHA-256 as 64 lowercase hex characters (see `writ keygen`)");
const seconds = (min: number, max: number) => z.number().int().min(min).max(max);

/** One agent: who it is, the human who owns it, and attributes for policies. */
const AgentConfig = z.strictObject({
  id,
  key_sha256: keySha256,
  owner: id,
  attributes: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(256))
    .default({}),
});
/** One reviewer: a person, and the groups policies may name. */
const ReviewerConfig = z.strictObject({ id, key_sha256: keySha256, groups: z.array(id).min(1) });
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
});

/**
 * The whole configuration: one file (YAML or JSON), validated at start. Every
 * field is documented in docs/configuration.md.
 */
export const WritConfigSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65_535).default(8787),
      max_body_bytes: z.number().int().min(1024).max(1_048_576).default(65_536),
      shutdown_grace_seconds: seconds(0, 300).default(10),
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
      default_ttl_seconds: seconds(30, 43_200).default(300),
      approval_timeout_seconds: seconds(30, 604_800).default(900),
      collect_window_seconds: seconds(10, 86_400).default(300),
      sweep_interval_seconds: seconds(1, 3600).default(5),
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
    })
    .prefault({}),
  identities: IdentitiesConfig.prefault({}),
});

export type WritConfig = z.infer<typeof WritConfigSchema>;
export type IdentitiesConfigInput = z.input<typeof IdentitiesConfig>;
