import canonicalize from "canonicalize";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/audit/canonical-json.js";

function fromIeeeHex(hex: string): number {
  return Buffer.from(hex, "hex").readDoubleBE(0);
}

describe("canonicalJson", () => {
  it("matches the RFC 8785 section 3.2.2 example", () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
        '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals":[null,true,false]}',
    );
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it("sorts keys by UTF-16 code units (RFC 8785 section 3.2.3)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // U+1F600 sorts before U+FB33: its first code unit, 0xD83D, is smaller.
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
        '"\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("sorts nested objects at every level and keeps array order", () => {
    const input = { b: [{ z: 1, a: { d: null, c: true } }, 3, "x"], a: {} };
    expect(canonicalJson(input)).toBe('{"a":{},"b":[{"a":{"c":true,"d":null},"z":1},3,"x"]}');
  });

  it("writes no whitespace and leaves non-ASCII text unescaped", () => {
    expect(canonicalJson({ name: "Zoë 😀", line: "a\u2028b", del: "\u007f" })).toBe(
      '{"del":"\u007f","line":"a\u2028b","name":"Zoë 😀"}',
    );
  });

  it("escapes control characters, quotes and backslashes as JSON does", () => {
    expect(canonicalJson('\u0000\u0008\t\n\f\r\u001f"\\')).toBe(
      '"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\"',
    );
  });

  it("serializes numbers per RFC 8785 appendix B", () => {
    const vectors: [string, string][] = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    for (const [hex, expected] of vectors) {
      expect(canonicalJson(fromIeeeHex(hex)), hex).toBe(expected);
    }
  });

  it("agrees with the canonicalize package on ordinary data", () => {
    const samples: unknown[] = [
      { seq: 1, nested: { b: [1, 2.5, -0, 1e21], a: "é\n" }, "": null, A: false },
      [{ "\ud83d\ude00": 1, "\ufb33": 2 }, "x\u007fy", 0.1 + 0.2],
      "plain",
      42,
      null,
    ];
    for (const sample of samples) {
      expect(canonicalJson(sample)).toBe(canonicalize(sample));
    }
  });

  it("rejects what JSON cannot carry faithfully", () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const rejected: unknown[] = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      undefined,
      { a: undefined },
      [1, undefined],
      // A hole, which JSON.stringify would write as null.
      new Array(2),
      () => 1,
      10n,
      Symbol("s"),
      new Date(0),
      new Map(),
      { toJSON: () => "x" },
      "lone \ud800 high",
      "lone \udc00 low",
      { "\ud800": 1 },
      circular,
    ];
    for (const value of rejected) {
      expect(() => canonicalJson(value), String(typeof value)).toThrow(TypeError);
    }
  });

  it("accepts objects without a prototype", () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.b = 1;
    bare.a = 2;
    expect(canonicalJson(bare)).toBe('{"a":2,"b":1}');
  });
});
