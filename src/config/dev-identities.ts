import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generateKey, hashKey, type KeyedPrincipal } from "../adapters/key-identity.js";
import type { PrincipalKind } from "../domain/principal.js";

/** The demo identities file `writ dev` writes: plain keys, for trying writ locally only. */
export interface DevIdentities {
  agents: { id: string; key: string; owner: string }[];
  /** `slack_user_id` links a demo reviewer to a Slack account (see docs/slack.md). */
  reviewers: { id: string; key: string; groups: string[]; slack_user_id?: string }[];
  auditors: { id: string; key: string }[];
  resource_servers: { id: string; key: string; audience: string }[];
}

export const DEV_IDENTITIES_FILE = "dev-identities.json";

function demo(): DevIdentities {
  return {
    // alice owns the agent and is also a data owner: she must never count toward its approvals.
    agents: [{ id: "report-agent", key: generateKey("agent"), owner: "alice" }],
    reviewers: [
      // Placeholder Slack ids: no real workspace has them, so nobody maps until
      // WRIT_DEV_SLACK_USERS names real accounts.
      {
        id: "alice",
        key: generateKey("reviewer"),
        groups: ["data-owners"],
        slack_user_id: "U0WRITALICE",
      },
      {
        id: "bob",
        key: generateKey("reviewer"),
        groups: ["data-owners"],
        slack_user_id: "U0WRITBOB",
      },
      {
        id: "carol",
        key: generateKey("reviewer"),
        groups: ["data-owners", "security"],
        slack_user_id: "U0WRITCAROL",
      },
    ],
    auditors: [{ id: "dana", key: generateKey("auditor") }],
    resource_servers: [
      { id: "billing-api", key: generateKey("resource_server"), audience: "billing-api" },
    ],
  };
}

function isDevIdentities(value: unknown): value is DevIdentities {
  const v = value as Partial<DevIdentities> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    Array.isArray(v.agents) &&
    Array.isArray(v.reviewers) &&
    Array.isArray(v.auditors) &&
    Array.isArray(v.resource_servers)
  );
}

/**
 * Reads `<dataDir>/dev-identities.json`, or creates it with fresh demo keys, so
 * that keys a user exported keep working across restarts of `writ dev`.
 */
export async function loadOrCreateDevIdentities(
  dataDir: string,
): Promise<{ identities: DevIdentities; path: string; created: boolean }> {
  const path = join(dataDir, DEV_IDENTITIES_FILE);
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (isDevIdentities(parsed)) return { identities: parsed, path, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT" && !(error instanceof SyntaxError))
      throw error;
  }
  const identities = demo();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(identities, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return { identities, path, created: true };
}

/** The directory entries for demo identities: keys become hashes here. */
export function devPrincipals(identities: DevIdentities): KeyedPrincipal[] {
  const keyed = <K extends PrincipalKind>(kind: K, key: string) => ({
    kind,
    keySha256: hashKey(key),
  });
  return [
    ...identities.agents.map((a) => ({
      ...keyed("agent", a.key),
      id: a.id,
      owner: a.owner,
      attributes: {},
    })),
    ...identities.reviewers.map((r) => ({
      ...keyed("reviewer", r.key),
      id: r.id,
      groups: r.groups,
    })),
    ...identities.auditors.map((u) => ({ ...keyed("auditor", u.key), id: u.id })),
    ...identities.resource_servers.map((s) => ({
      ...keyed("resource_server", s.key),
      id: s.id,
      audience: s.audience,
    })),
  ];
}

/**
 * The demo reviewers' Slack links: `override` (from WRIT_DEV_SLACK_USERS) gives
 * ids in reviewer order; otherwise the `slack_user_id` each carries.
 */
export function devSlackUserIds(
  identities: DevIdentities,
  override?: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  identities.reviewers.forEach((reviewer, index) => {
    const id = override !== undefined ? override[index] : reviewer.slack_user_id;
    if (typeof id === "string" && /^[UW][A-Z0-9]{2,20}$/.test(id)) out[reviewer.id] = id;
  });
  return out;
}
