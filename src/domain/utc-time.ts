/** A UTC time as people type it: `2026-01-15T09:00`, to the minute, second or fraction, then `Z`. */
export const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z$/;

/**
 * The instant a `UTC_TIME` names, in ms since the epoch; undefined for any
 * other text, and for a day or an hour that does not exist (2026-02-30,
 * 24:00). `Date.parse` alone would roll those over into the next month or day,
 * so a range asked for would silently become another.
 */
export function utcTimeMs(text: string): number | undefined {
  if (!UTC_TIME.test(text)) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return undefined;
  // Date, hour, minute and (when given) second must read back as written.
  const written = text.slice(0, text[16] === ":" ? 19 : 16);
  return new Date(ms).toISOString().startsWith(written) ? ms : undefined;
}
