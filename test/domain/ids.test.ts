import { describe, expect, it } from "vitest";
import { newId } from "../../src/domain/ids.js";

describe("newId", () => {
  it("is the prefix and 128 bits, base64url", () => {
    for (const prefix of ["req", "jti"] as const) {
      const id = newId(prefix);
      expect(id).toMatch(new RegExp(`^${prefix}_[A-Za-z0-9_-]{22}$`));
      expect(Buffer.from(id.slice(4), "base64url")).toHaveLength(16);
    }
  });

  it("never repeats, across many refills of the random batch", () => {
    const ids = Array.from({ length: 20_000 }, () => newId("req"));
    expect(new Set(ids).size).toBe(ids.length);
    // Each bit position is set in about half of the ids: the bytes are random, not a counter.
    const ones = new Array<number>(128).fill(0);
    for (const id of ids) {
      const bytes = Buffer.from(id.slice(4), "base64url");
      for (let bit = 0; bit < 128; bit++) {
        if (((bytes[bit >> 3] as number) >> (bit & 7)) & 1) ones[bit] = (ones[bit] as number) + 1;
      }
    }
    for (const count of ones) {
      expect(count / ids.length).toBeGreaterThan(0.45);
      expect(count / ids.length).toBeLessThan(0.55);
    }
  });
});
