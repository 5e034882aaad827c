import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";

const GITHUB = {
  issuer: "https://token.actions.githubusercontent.com",
  audience: "https://writ.example.com",
  agent: { id: "gh:{repository}", owner: "{actor}", attributes: { repository: "repository" } },
  require: { repository_owner: "acme" },
};

function oidc(...entries: unknown[]) {
  return parseConfig({ identities: { oidc: entries } });
}

function refusal(entries: unknown[], extra: Record<string, unknown> = {}): string {
  try {
    parseConfig({ identities: { oidc: entries }, ...extra });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("identities.oidc", () => {
  it("accepts an issuer with defaults for algorithms and tolerance", () => {
    const [entry] = oidc(GITHUB).identities.oidc;
    expect(entry).toMatchObject({ algorithms: ["RS256", "ES256"], clock_tolerance_seconds: 10 });
    expect(parseConfig({}).mcp).toEqual({ http: true, return_credentials: false });
  });

  it("refuses insecure or malformed issuer and key URLs", () => {
    expect(refusal([{ ...GITHUB, issuer: "http://issuer.example.com" }])).toMatch(
      /identities\.oidc\.0\.issuer: an https URL/,
    );
    expect(refusal([{ ...GITHUB, jwks_uri: "https://u:p@issuer.example.com/jwks" }])).toMatch(
      /identities\.oidc\.0\.jwks_uri/,
    );
    expect(refusal([{ ...GITHUB, issuer: "not a url" }])).toMatch(/issuer/);
    expect(oidc({ ...GITHUB, issuer: "http://127.0.0.1:9000" }).identities.oidc).toHaveLength(1);
  });

  it("refuses unsafe verification settings", () => {
    expect(refusal([{ ...GITHUB, clock_tolerance_seconds: 61 }])).toMatch(
      /clock_tolerance_seconds/,
    );
    expect(refusal([{ ...GITHUB, algorithms: ["HS256"] }])).toMatch(/algorithms/);
    expect(refusal([{ ...GITHUB, algorithms: ["none"] }])).toMatch(/algorithms/);
    expect(refusal([{ ...GITHUB, algorithms: [] }])).toMatch(/algorithms/);
    expect(refusal([{ ...GITHUB, audience: [] }])).toMatch(/audience/);
    expect(refusal([{ ...GITHUB, extra: true }])).toMatch(/extra|Unrecognized/i);
  });

  it("refuses an issuer without claim rules: a public issuer signs for everyone", () => {
    expect(refusal([{ ...GITHUB, require: {} }])).toMatch(/require: name at least one claim/);
  });

  it("refuses mappings that could take another principal's id", () => {
    expect(refusal([{ ...GITHUB, agent: { ...GITHUB.agent, id: "{repository}" } }])).toMatch(
      /agent\.id: must start with a literal prefix/,
    );
    expect(refusal([{ ...GITHUB, agent: { ...GITHUB.agent, id: "gh{repository}" } }])).toMatch(
      /agent\.id/,
    );
    const k8s = {
      ...GITHUB,
      issuer: "https://k8s.example.com",
      agent: { id: "gh:x:{sub}", owner: "alice" },
    };
    expect(refusal([GITHUB, k8s])).toMatch(/identities\.oidc\.1\.agent\.id: has the prefix/);
    expect(refusal([GITHUB, GITHUB])).toMatch(/identities\.oidc\.1\.issuer: is listed twice/);
    expect(
      refusal([{ ...GITHUB, issuer: "https://writ.example.com" }], {
        issuer: "https://writ.example.com",
      }),
    ).toMatch(/is writ's own issuer/);
  });

  it("refuses bad templates, claim paths and reserved attribute names", () => {
    expect(refusal([{ ...GITHUB, agent: { ...GITHUB.agent, id: "gh:{repo sitory}" } }])).toMatch(
      /agent\.id/,
    );
    expect(refusal([{ ...GITHUB, agent: { ...GITHUB.agent, owner: "{}" } }])).toMatch(
      /agent\.owner/,
    );
    expect(
      refusal([{ ...GITHUB, agent: { ...GITHUB.agent, attributes: { owner: "actor" } } }]),
    ).toMatch(/reserved/);
    expect(
      refusal([{ ...GITHUB, agent: { ...GITHUB.agent, attributes: { repo: "a//b" } } }]),
    ).toMatch(/attributes/);
    expect(refusal([{ ...GITHUB, require: { "a/b/c/d/e/f": "x" } }])).toMatch(/require/);
  });

  it("refuses two placeholders with nothing between them, which different claims could fill alike", () => {
    const k8s = {
      ...GITHUB,
      issuer: "https://k8s.example.com",
      agent: { id: "k8s:{kubernetes.io/namespace}{kubernetes.io/serviceaccount/name}", owner: "a" },
    };
    // Namespace "ab" with account "c", and "a" with "bc", would both be k8s:abc.
    expect(refusal([k8s])).toMatch(
      /identities\.oidc\.0\.agent\.id: .*\{kubernetes\.io\/namespace\}\{kubernetes\.io\/serviceaccount\/name\}.*separator/,
    );
    expect(
      refusal([{ ...GITHUB, agent: { ...GITHUB.agent, owner: "{actor}{actor_id}" } }]),
    ).toMatch(/agent\.owner: /);
    expect(
      refusal([{ ...GITHUB, agent: { ...GITHUB.agent, acts_for: ["{actor}{actor_id}"] } }]),
    ).toMatch(/agent\.acts_for\.0: /);
    const separated = {
      ...k8s,
      agent: {
        id: "k8s:{kubernetes.io/namespace}/{kubernetes.io/serviceaccount/name}",
        owner: "a",
      },
    };
    expect(oidc(separated).identities.oidc[0]?.agent.id).toBe(separated.agent.id);
  });

  it("takes acts_for as fixed person ids and templates, refusing bad or repeated entries", () => {
    const withActsFor = (acts_for: unknown) => ({
      ...GITHUB,
      agent: { ...GITHUB.agent, acts_for },
    });
    const [entry] = oidc(withActsFor(["{actor}", "release-oncall"])).identities.oidc;
    expect(entry?.agent.acts_for).toEqual(["{actor}", "release-oncall"]);
    expect(oidc(withActsFor([])).identities.oidc[0]?.agent.acts_for).toEqual([]);
    expect(oidc(GITHUB).identities.oidc[0]?.agent.acts_for).toBeUndefined();
    expect(refusal([withActsFor(["{}"])])).toMatch(/agent\.acts_for\.0/);
    expect(refusal([withActsFor(["{actor}", "team:oncall"])])).toMatch(
      /agent\.acts_for\.1: a fixed entry is a person id/,
    );
    expect(refusal([withActsFor(["alice", "{actor}", "ALICE"])])).toMatch(
      /agent\.acts_for\.2: names the same person as entry 0/,
    );
  });
});

describe("mcp", () => {
  it("refuses unknown keys and non-boolean switches", () => {
    expect(() => parseConfig({ mcp: { return_credential: true } })).toThrow(ConfigError);
    expect(() => parseConfig({ mcp: { return_credentials: "yes" } })).toThrow(
      /mcp\.return_credentials/,
    );
  });
});
