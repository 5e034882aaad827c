import { randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { compareStreamIds as compareRedisIds, isStreamId } from "../../src/adapters/redis/codec.js";
import { compareStreamIds, previousEventId } from "../../src/domain/stream-id.js";

/** The plain definition: part by part as integers, a missing part counting as 0. */
function reference(a: string, b: string): number {
  const pa = a.split("-");
  const pb = b.split("-");
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = BigInt(pa[i] ?? "0");
    const y = BigInt(pb[i] ?? "0");
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function randomDigits(): string {
  const length = randomInt(1, 22);
  let out = "";
  for (let i = 0; i < length; i++) out += String(randomInt(0, i === 0 && length > 1 ? 3 : 10));
  return out;
}

describe("stream id order", () => {
  it("orders ids as integers, part by part, however long", () => {
    expect(compareStreamIds("9", "10")).toBe(-1);
    expect(compareStreamIds("17", "17")).toBe(0);
    expect(compareStreamIds("1768467600000-3", "1768467600000-12")).toBe(-1);
    expect(compareStreamIds("1768467600001-0", "1768467600000-99")).toBe(1);
    expect(compareStreamIds("99999999999999999999-1", "100000000000000000000-0")).toBe(-1);
    // Leading zeros write the same integer; a missing part is 0.
    expect(compareStreamIds("007-1", "7-1")).toBe(0);
    expect(compareStreamIds("17", "17-0")).toBe(0);
    expect(compareStreamIds("17", "17-1")).toBe(-1);
  });

  it("agrees with integer comparison on random ids", () => {
    for (let i = 0; i < 2_000; i++) {
      const a = randomInt(0, 2) === 0 ? randomDigits() : `${randomDigits()}-${randomDigits()}`;
      const b = randomInt(0, 4) === 0 ? a : `${randomDigits()}-${randomDigits()}`;
      expect(compareStreamIds(a, b)).toBe(reference(a, b));
    }
  });

  it("refuses parts that are not decimal digits", () => {
    for (const bad of ["", "-", "1-", "a-1", "1-x", "1.5", " 1", "+1", "1e3"]) {
      expect(() => compareStreamIds(bad, "1-1")).toThrow(SyntaxError);
      expect(() => compareStreamIds("1-1", bad)).toThrow(SyntaxError);
    }
  });

  it("knows a Redis stream id: two unsigned 64-bit integers", () => {
    expect(isStreamId("0-0")).toBe(true);
    expect(isStreamId("18446744073709551615-18446744073709551615")).toBe(true);
    expect(isStreamId("18446744073709551616-0")).toBe(false);
    expect(isStreamId("0-99999999999999999999")).toBe(false);
    for (const bad of ["17", "1-2-3", "-1", "1-", "a-1", "1-1 ", "123456789012345678901-0"]) {
      expect(isStreamId(bad)).toBe(false);
    }
    expect(compareRedisIds("1-9", "1-10")).toBe(-1);
    expect(compareRedisIds("18446744073709551615-0", "18446744073709551614-5")).toBe(1);
    expect(() => compareRedisIds("17", "1-1")).toThrow(TypeError);
    expect(() => compareRedisIds("1-1", "18446744073709551616-0")).toThrow(TypeError);
  });
});

describe("previousEventId", () => {
  it("names the id just before an event id, so a read after it starts at that event", () => {
    expect(previousEventId("17")).toBe("16");
    expect(previousEventId("1")).toBe("0");
    expect(previousEventId("1768467600000-3")).toBe("1768467600000-2");
    expect(previousEventId("1768467600000-0")).toBe("1768467599999-18446744073709551615");
    expect(previousEventId("0-1")).toBe("0-0");
    for (const id of ["17", "1768467600000-3", "1768467600000-0", "0-1"]) {
      const before = previousEventId(id) as string;
      expect(compareStreamIds(before, id)).toBe(-1);
    }
  });

  it("has nothing for what is not an event id, or for the first possible one", () => {
    for (const bad of ["0", "0-0", "", "007", "1-2-3", "abc", "18446744073709551616-0"]) {
      expect(previousEventId(bad), bad).toBeUndefined();
    }
  });
});
