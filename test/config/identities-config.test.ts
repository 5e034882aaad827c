import { describe, expect, it } from "vitest";
import { createKeyDirectory, generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";

/** The message of the ConfigError `parse` throws; "" when it throws none. */
function configMessage(parse: () => unknown): string {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  return "";
}

const reviewer = (id: string) => ({
  id,
  key_sha256: hashKey(generateKey("reviewer")),
  groups: ["data-owners"],
});

describe("reviewers are people, and ids compare without case", () => {
  it("refuses two reviewer entries that name one person, naming the second", () => {
    let message = "";
    try {
      parseConfig({
        identities: { reviewers: [reviewer("bob"), reviewer("carol"), reviewer("Bob")] },
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(
      /identities\.reviewers\.2\.id: names the same person as identities\.reviewers\.0\.id/,
    );
  });

  it("accepts distinct people, and one id as two kinds of principal", () => {
    const config = parseConfig({
      identities: {
        reviewers: [reviewer("bob"), reviewer("carol")],
        auditors: [{ id: "bob", key_sha256: hashKey(generateKey("auditor")) }],
      },
    });
    expect(config.identities.reviewers.map((r) => r.id)).toEqual(["bob", "carol"]);
  });

  it("refuses a reviewer whose id is another reviewer's email: one person would approve twice", () => {
    const message = configMessage(() =>
      parseConfig({
        identities: {
          reviewers: [
            { ...reviewer("alice"), email: "alice@example.com" },
            reviewer("Alice@Example.com"),
          ],
        },
      }),
    );
    expect(message).toMatch(
      /identities\.reviewers\.1\.id: names the same person as identities\.reviewers\.0 \(its email;/,
    );
  });

  it("refuses two reviewers with one email, with or without Slack", () => {
    const message = configMessage(() =>
      parseConfig({
        identities: {
          reviewers: [
            { ...reviewer("alice"), email: "alice@example.com" },
            { ...reviewer("al"), email: "ALICE@example.com" },
          ],
        },
      }),
    );
    expect(message).toMatch(
      /identities\.reviewers\.1\.email: names the same person as identities\.reviewers\.0 \(its email;/,
    );
  });

  it("refuses a reviewer's email that is another reviewer's id", () => {
    const message = configMessage(() =>
      parseConfig({
        identities: {
          reviewers: [
            reviewer("carol@example.com"),
            { ...reviewer("carol"), email: "carol@example.com" },
          ],
        },
      }),
    );
    expect(message).toMatch(
      /identities\.reviewers\.1\.email: names the same person as identities\.reviewers\.0 \(its id;/,
    );
  });

  it("accepts a reviewer whose email is their own id", () => {
    const config = parseConfig({
      identities: {
        reviewers: [
          { ...reviewer("dave@example.com"), email: "Dave@example.com" },
          reviewer("erin"),
        ],
      },
    });
    expect(config.identities.reviewers.map((r) => r.id)).toEqual(["dave@example.com", "erin"]);
  });

  it("the key directory refuses them too, however it is built", () => {
    const entry = (id: string) => ({
      kind: "reviewer" as const,
      id,
      groups: ["data-owners"],
      keySha256: hashKey(generateKey("reviewer")),
    });
    expect(() => createKeyDirectory([entry("bob"), entry("BOB")])).toThrow(
      /reviewer id "BOB" is defined twice \(ids compare without case\)/,
    );
  });
});

describe("identities.agents[].acts_for", () => {
  const agent = (acts_for: unknown) => ({
    id: "report-agent",
    key_sha256: hashKey(generateKey("agent")),
    owner: "alice",
    acts_for,
  });
  const refusal = (acts_for: unknown): string => {
    try {
      parseConfig({ identities: { agents: [agent(acts_for)] } });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("the configuration was accepted");
  };

  it("accepts person ids, an empty list, and no list at all", () => {
    const listed = parseConfig({ identities: { agents: [agent(["bob", "carol@example.com"])] } });
    expect(listed.identities.agents[0]?.acts_for).toEqual(["bob", "carol@example.com"]);
    const none = parseConfig({ identities: { agents: [agent([])] } });
    expect(none.identities.agents[0]?.acts_for).toEqual([]);
    const { acts_for: _, ...unrestricted } = agent(undefined);
    const open = parseConfig({ identities: { agents: [unrestricted] } });
    expect(open.identities.agents[0]?.acts_for).toBeUndefined();
  });

  it("refuses what is not a person id, naming the entry", () => {
    expect(refusal(["bob", "gh:carol"])).toMatch(/identities\.agents\.0\.acts_for\.1/);
    expect(refusal([" bob"])).toMatch(/identities\.agents\.0\.acts_for\.0/);
    expect(refusal([""])).toMatch(/identities\.agents\.0\.acts_for\.0/);
    expect(refusal("bob")).toMatch(/identities\.agents\.0\.acts_for/);
  });

  it("refuses one person listed twice, in any case", () => {
    expect(refusal(["bob", "carol", "Bob"])).toMatch(
      /identities\.agents\.0\.acts_for\.2: names the same person as entry 0 \(ids compare without case\)/,
    );
  });
});
