import { describe, expect, it } from "vitest";
import { createKeyDirectory, generateKey, hashKey } from "../../src/adapters/key-identity.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";

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
