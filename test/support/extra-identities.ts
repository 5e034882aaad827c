import { generateKey, hashKey } from "../../src/adapters/key-identity.js";

/** Principals to add on top of the demo ones, with their plain keys for tests. */
export interface ExtraIdentities {
  agents?: { id: string; owner: string; acts_for?: string[] }[];
  reviewers?: { id: string; groups: string[] }[];
  resource_servers?: { id: string; audience: string }[];
}

/**
 * The `identities` configuration override for `startTestWrit`, with fresh keys.
 * The configuration holds only key hashes; `keys` maps each id to its plain key.
 */
export function extraIdentities(extra: ExtraIdentities): {
  overrides: { identities: Record<string, unknown[]> };
  keys: Record<string, string>;
} {
  const keys: Record<string, string> = {};
  const keyFor = (id: string, kind: Parameters<typeof generateKey>[0]) => {
    const key = generateKey(kind);
    keys[id] = key;
    return hashKey(key);
  };
  return {
    overrides: {
      identities: {
        agents: (extra.agents ?? []).map((a) => ({ ...a, key_sha256: keyFor(a.id, "agent") })),
        reviewers: (extra.reviewers ?? []).map((r) => ({
          ...r,
          key_sha256: keyFor(r.id, "reviewer"),
        })),
        resource_servers: (extra.resource_servers ?? []).map((s) => ({
          ...s,
          key_sha256: keyFor(s.id, "resource_server"),
        })),
      },
    },
    keys,
  };
}
