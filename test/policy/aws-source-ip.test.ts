import { describe, expect, it } from "vitest";
import { readPolicyTerms } from "../../src/policy/annotations.js";
import { combineDecision } from "../../src/policy/decision-rules.js";
import type { LoadedPolicy } from "../../src/policy/policy-set.js";
import { DEFAULTS } from "./temp-policies.js";

describe("@aws_source_ip", () => {
  it("reads IPv4 and IPv6 addresses and CIDR blocks", () => {
    const result = readPolicyTerms("permit", {
      aws_source_ip: " 203.0.113.0/24, 198.51.100.7 ,2001:db8::/32, 2001:db8::1",
    });
    expect(result).toMatchObject({
      ok: true,
      terms: { awsSourceIps: ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "2001:db8::1"] },
    });
    const without = readPolicyTerms("permit", {});
    expect(without.ok && without.terms.awsSourceIps).toBeUndefined();
  });

  it("refuses anything else, so a typo never silently widens access", () => {
    for (const value of [
      null,
      "",
      "203.0.113.0/33",
      "203.0.113/24",
      "2001:db8::/129",
      "10.0.0.0/8/8",
      "10.0.0.0/08",
      "example.com",
      "*",
      // A zone index names a local interface, which AWS has never heard of.
      "fe80::1%eth0",
      "fe80::%1/64",
      Array.from({ length: 21 }, (_, i) => `192.0.2.${i}`).join(","),
    ]) {
      const result = readPolicyTerms("permit", { aws_source_ip: value });
      expect(result.ok, String(value)).toBe(false);
    }
    expect(readPolicyTerms("forbid", { aws_source_ip: "192.0.2.1" }).ok).toBe(false);
  });

  it("keeps every determining permit's list: each must hold", () => {
    const permit = (id: string, ips?: string[]): LoadedPolicy => {
      const result = readPolicyTerms(
        "permit",
        ips === undefined ? {} : { aws_source_ip: ips.join(",") },
      );
      if (!result.ok) throw new Error(result.problems.join("; "));
      return { id, effect: "permit", file: `${id}.cedar`, text: "", terms: result.terms };
    };
    const policies = new Map([
      ["a", permit("a", ["203.0.113.0/24"])],
      ["b", permit("b", ["198.51.100.0/24"])],
      ["c", permit("c")],
    ]);
    const decision = combineDecision(
      { decision: "allow", reasons: ["a", "b", "c"], errored: [] },
      policies,
      DEFAULTS,
    );
    expect(decision.awsSourceIps).toEqual([["203.0.113.0/24"], ["198.51.100.0/24"]]);
    const open = combineDecision(
      { decision: "allow", reasons: ["c"], errored: [] },
      policies,
      DEFAULTS,
    );
    expect(open).not.toHaveProperty("awsSourceIps");
  });
});
