import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Agent, Auditor, Principal, PrincipalKind, Reviewer } from "../domain/principal.js";
import { personKey } from "../domain/review.js";
import type { IdentityDirectory } from "../ports/identity.js";

/** Key prefixes say which kind of principal a key is for, so a misplaced key is obvious. */
const KEY_PREFIX: Record<PrincipalKind, string> = {
  agent: "writ_agent_",
  reviewer: "writ_reviewer_",
  auditor: "writ_auditor_",
  resource_server: "writ_rs_",
};

/** A new bearer key for a principal of `kind`: prefix + 256 random bits. */
export function generateKey(kind: PrincipalKind): string {
  return `${KEY_PREFIX[kind]}${randomBytes(32).toString("base64url")}`;
}

/** The stored form of a key: lowercase hex SHA-256. Keys are high-entropy, so no slow hash is needed. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/**
 * The tag naming a key (see `IdentityDirectory.keyTag`): the first 128 bits of
 * a domain-separated SHA-256 of the stored hash. It is one-way, and never has
 * the shape of a stored hash, so it cannot be mistaken for or used as one.
 */
function keyTagOf(keySha256: string): string {
  return createHash("sha256")
    .update(`writ key tag\0${keySha256}`, "utf8")
    .digest("hex")
    .slice(0, 32);
}

export type KeyedPrincipal = Principal & { readonly keySha256: string };

const MAX_KEY_LENGTH = 512;

/**
 * Identities from configuration: each principal holds one key, stored only as
 * its SHA-256. Lookup is by hash, then the stored and presented hashes are
 * compared in constant time.
 */
export function createKeyDirectory(principals: readonly KeyedPrincipal[]): IdentityDirectory {
  const byHash = new Map<string, { principal: Principal; hash: Buffer }>();
  const agents = new Map<string, Agent>();
  const reviewers = new Map<string, Reviewer>();
  const auditors = new Map<string, Auditor>();
  const ids = new Set<string>();
  const tags = new Map<string, string>();
  for (const entry of principals) {
    const { keySha256, ...principal } = entry;
    if (!/^[0-9a-f]{64}$/.test(keySha256)) {
      throw new TypeError(
        `key_sha256 of ${principal.kind} "${principal.id}" must be 64 lowercase hex characters`,
      );
    }
    if (byHash.has(keySha256)) {
      throw new TypeError(
        `${principal.kind} "${principal.id}" reuses a key held by another principal`,
      );
    }
    // Person ids compare without case: "bob" and "Bob" are one reviewer (rule 2).
    const idKey = `${principal.kind}:${personKey(principal.id)}`;
    if (ids.has(idKey)) {
      throw new TypeError(
        `${principal.kind} id "${principal.id}" is defined twice (ids compare without case)`,
      );
    }
    ids.add(idKey);
    const clean = Object.freeze(principal) as Principal;
    byHash.set(keySha256, { principal: clean, hash: Buffer.from(keySha256, "hex") });
    tags.set(`${clean.kind}:${clean.id}`, keyTagOf(keySha256));
    if (clean.kind === "agent") agents.set(clean.id, clean);
    if (clean.kind === "reviewer") reviewers.set(clean.id, clean);
    if (clean.kind === "auditor") auditors.set(clean.id, clean);
  }
  return {
    async authenticate(key) {
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) return undefined;
      const presented = hashKey(key);
      const found = byHash.get(presented);
      if (found === undefined) return undefined;
      return timingSafeEqual(found.hash, Buffer.from(presented, "hex"))
        ? found.principal
        : undefined;
    },
    agent: (id) => agents.get(id),
    reviewer: (id) => reviewers.get(id),
    auditor: (id) => auditors.get(id),
    keyTag: (kind, id) => tags.get(`${kind}:${id}`),
  };
}
