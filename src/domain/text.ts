/**
 * Text people will read, from any channel: no control characters, no
 * bidirectional overrides or isolates (text from agents reaches reviewers'
 * screens and terminals, where these could disguise it), and no unpaired UTF-16
 * surrogates, which no log can record exactly.
 */
export const PRINTABLE = /^[^\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]*$/u;
export const PRINTABLE_MESSAGE =
  "must not contain control characters, bidirectional overrides or unpaired surrogates";

/** White space and characters that render as nothing (zero-width spaces, soft hyphens, joiners). */
const INVISIBLE = /[\s\p{Default_Ignorable_Code_Point}]/gu;

/**
 * Whether `value` says anything a person can read: a reason made of spaces or
 * zero-width characters is no reason, in whatever channel it arrives.
 */
export function hasVisibleText(value: string | undefined): boolean {
  return value !== undefined && value.replace(INVISIBLE, "").length > 0;
}
