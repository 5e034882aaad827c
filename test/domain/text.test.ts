import { describe, expect, it } from "vitest";
import { hasVisibleText } from "../../src/domain/text.js";

const hex = (value: string) =>
  [...value].map((c) => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase()}`).join(" ");

describe("hasVisibleText", () => {
  // Each renders as nothing, or as blank space, on a reviewer's screen.
  const blank: [string, string][] = [
    ["BRAILLE PATTERN BLANK", "\u2800"],
    ["MUSICAL SYMBOL NULL NOTEHEAD", "\u{1D159}"],
    ["HANGUL FILLER", "\u3164"],
    ["HANGUL CHOSEONG FILLER", "\u115F"],
    ["HANGUL JUNGSEONG FILLER", "\u1160"],
    ["HALFWIDTH HANGUL FILLER", "\uFFA0"],
    ["LINE SEPARATOR", "\u2028"],
    ["PARAGRAPH SEPARATOR", "\u2029"],
    ["MONGOLIAN VOWEL SEPARATOR", "\u180E"],
    ["ZERO WIDTH SPACE", "\u200B"],
    ["ZERO WIDTH NON-JOINER", "\u200C"],
    ["ZERO WIDTH JOINER", "\u200D"],
    ["LEFT-TO-RIGHT MARK", "\u200E"],
    ["RIGHT-TO-LEFT MARK", "\u200F"],
    ["WORD JOINER", "\u2060"],
    ["FUNCTION APPLICATION", "\u2061"],
    ["INVISIBLE TIMES", "\u2062"],
    ["INVISIBLE SEPARATOR", "\u2063"],
    ["INVISIBLE PLUS", "\u2064"],
    ["ZERO WIDTH NO-BREAK SPACE", "\uFEFF"],
    ["SOFT HYPHEN", "\u00AD"],
    ["VARIATION SELECTOR-16", "\uFE0F"],
    ["VARIATION SELECTOR-17", "\u{E0100}"],
    ["LANGUAGE TAG", "\u{E0001}"],
    ["TAG LATIN SMALL LETTER A", "\u{E0061}"],
    ["CANCEL TAG", "\u{E007F}"],
    ["COMBINING GRAPHEME JOINER", "\u034F"],
    ["KHMER VOWEL INHERENT AQ", "\u17B4"],
    ["INTERLINEAR ANNOTATION ANCHOR", "\uFFF9"],
    ["MUSICAL SYMBOL BEGIN BEAM", "\u{1D173}"],
    ["IDEOGRAPHIC SPACE", "\u3000"],
    ["NO-BREAK SPACE", "\u00A0"],
    ["EN QUAD", "\u2000"],
    // A mark is drawn on a base character; with none, it says nothing.
    ["COMBINING ACUTE ACCENT", "\u0301"],
    ["COMBINING LONG STROKE OVERLAY", "\u0336"],
    // What a private-use or unassigned code point shows depends on the font.
    ["a private-use character", "\uE000"],
    ["an unassigned code point", "\u0378"],
  ];

  for (const [name, char] of blank) {
    it(`is false for ${name} (${hex(char)}), alone, repeated or among spaces`, () => {
      expect(hasVisibleText(char)).toBe(false);
      expect(hasVisibleText(char.repeat(3))).toBe(false);
      expect(hasVisibleText(` ${char}\t${char} `)).toBe(false);
    });
  }

  it("is false for every blank character together, and for nothing at all", () => {
    expect(hasVisibleText(blank.map(([, char]) => char).join(" "))).toBe(false);
    expect(hasVisibleText("")).toBe(false);
    expect(hasVisibleText(undefined)).toBe(false);
  });

  it("is true once a letter, digit, punctuation mark or symbol shows", () => {
    for (const value of [
      "ok",
      "7",
      ".",
      "$",
      "é",
      "e\u0301",
      "中文",
      "ไม่",
      "\u2801", // a braille pattern with one dot raised
      "❤\uFE0F",
      "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
      "\u2800\u3164 no \u200B",
    ]) {
      expect(hasVisibleText(value), hex(value)).toBe(true);
    }
  });
});
