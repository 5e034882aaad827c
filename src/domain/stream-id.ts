const DIGITS = /^\d+$/;

/** A string of decimal digits without its leading zeros (one "0" stays). */
function withoutLeadingZeros(digits: string): string {
  let start = 0;
  while (start < digits.length - 1 && digits.charCodeAt(start) === 48) start++;
  return start === 0 ? digits : digits.slice(start);
}

/**
 * Orders two strings of decimal digits as the integers they write, however
 * long: by length once leading zeros are gone, then digit by digit.
 */
function compareDigits(a: string, b: string): number {
  if (!DIGITS.test(a) || !DIGITS.test(b)) {
    throw new SyntaxError("a stream id is integers joined by '-'");
  }
  const x = withoutLeadingZeros(a);
  const y = withoutLeadingZeros(b);
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Orders event stream ids. Ids are opaque but increasing: the embedded store
 * uses integers ("17"), Redis uses "<ms>-<seq>" ("1768467600000-3"); both
 * compare part by part as integers, a missing part counting as 0. Throws a
 * `SyntaxError` for a part that is not decimal digits.
 */
export function compareStreamIds(a: string, b: string): number {
  const pa = a.split("-");
  const pb = b.split("-");
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const order = compareDigits(pa[i] ?? "0", pb[i] ?? "0");
    if (order !== 0) return order;
  }
  return 0;
}
