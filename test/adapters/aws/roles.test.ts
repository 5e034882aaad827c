import { describe, expect, it } from "vitest";
import { compileRoutes, wildcardMatch } from "../../../src/adapters/aws/roles.js";

describe("AWS role patterns", () => {
  it.each([
    ["arn:aws:s3:::reports/*", "arn:aws:s3:::reports/q3.csv", true],
    ["arn:aws:s3:::reports/*", "arn:aws:s3:::reports-old/q3.csv", false],
    ["arn:aws:s3:::*-*/*/*.csv", "arn:aws:s3:::a-b/c/d.csv", true],
    ["arn:aws:s3:::*-*/*/*.csv", "arn:aws:s3:::a-b/c/d.txt", false],
    ["*", "", true],
    ["", "", true],
    ["", "x", false],
    ["a*b*c", "abc", true],
    ["a*b*c", "acb", false],
    ["arn:aws:s3:::exact", "arn:aws:s3:::exact", true],
    ["arn:aws:s3:::exact", "arn:aws:s3:::exact2", false],
    ["a.c", "abc", false],
  ])("%s matches %s: %s", (pattern, text, expected) => {
    expect(wildcardMatch(pattern, text)).toBe(expected);
  });

  it("stays fast on hostile resources that make a backtracking regex explode", () => {
    const routes = compileRoutes([
      { resourcePattern: "arn:aws:s3:::*-*/*/*/*/*.csv", roleArn: "arn:aws:iam::1:role/r" },
    ]);
    const hostile = `arn:aws:s3:::${"-/".repeat(500)}`;
    // A regex of five `.*` ran for minutes on this input (past the test timeout);
    // the matcher is quadratic at worst and answers at once.
    expect(routes[0]?.matches(hostile)).toBe(false);
  });
});
