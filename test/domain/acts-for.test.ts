import { describe, expect, it } from "vitest";
import { WritError } from "../../src/domain/errors.js";
import type { Agent } from "../../src/domain/principal.js";
import { assertMayActFor } from "../../src/domain/review.js";

const agent = (actsFor?: readonly string[]): Agent => ({
  kind: "agent",
  id: "scoped-agent",
  owner: "zed",
  attributes: {},
  ...(actsFor !== undefined ? { actsFor } : {}),
});

function refusal(run: () => void): WritError | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof WritError) return error;
    throw error;
  }
  return undefined;
}

describe("assertMayActFor", () => {
  it("lets an agent without acts_for name anyone, and any agent name nobody", () => {
    expect(refusal(() => assertMayActFor(agent(), "bob"))).toBeUndefined();
    expect(refusal(() => assertMayActFor(agent([]), undefined))).toBeUndefined();
  });

  it("takes the people acts_for names as person ids compare: case and compatibility forms folded", () => {
    expect(refusal(() => assertMayActFor(agent(["carol"]), "CAROL"))).toBeUndefined();
    expect(refusal(() => assertMayActFor(agent(["carol"]), "ｃａｒｏｌ"))).toBeUndefined();
  });

  it("refuses anyone else with on_behalf_of_not_allowed", () => {
    expect(refusal(() => assertMayActFor(agent(["carol"]), "bob"))?.code).toBe(
      "on_behalf_of_not_allowed",
    );
    expect(refusal(() => assertMayActFor(agent([]), "zed"))?.code).toBe("on_behalf_of_not_allowed");
    // Not a prefix or substring match.
    expect(refusal(() => assertMayActFor(agent(["carol"]), "carol2"))?.code).toBe(
      "on_behalf_of_not_allowed",
    );
  });
});
