/**
 * Text people will read, from any channel: no control characters, no
 * bidirectional overrides or isolates (text from agents reaches reviewers'
 * screens and terminals, where these could disguise it), and no unpaired UTF-16
 * surrogates, which no log can record exactly.
 */
export const PRINTABLE = /^[^\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]*$/u;
export const PRINTABLE_MESSAGE =
  "must not contain control characters, bidirectional overrides or unpaired surrogates";

/**
 * A character that draws something: a letter, digit, punctuation mark or symbol
 * (Unicode general categories L, N, P and S). Everything else says nothing
 * alone: white space and separators, control and format characters, marks
 * (drawn on a base character), private-use and unassigned code points. Some
 * graphic characters are blank by design and are left out too: the
 * default-ignorable ones (Hangul fillers U+115F, U+1160, U+3164, U+FFA0) and
 * U+2800 BRAILLE PATTERN BLANK and U+1D159 MUSICAL SYMBOL NULL NOTEHEAD.
 * Listing what shows, rather than what hides, keeps a blank character nobody
 * thought of from passing for text.
 */
const VISIBLE = /(?![\p{Default_Ignorable_Code_Point}\u2800\u{1D159}])[\p{L}\p{N}\p{P}\p{S}]/u;

/**
 * Whether `value` says anything a person can read: a reason made of spaces,
 * zero-width or blank characters is no reason, in whatever channel it arrives.
 */
export function hasVisibleText(value: string | undefined): boolean {
  return value !== undefined && VISIBLE.test(value);
}
