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

/**
 * The event ids writ hands out, in canonical form: the embedded store counts
 * from 1 ("17", at most a safe integer); Redis writes "<ms>-<seq>", each part
 * an unsigned 64-bit integer without leading zeros ("1768467600000-3"). The
 * pattern checks the shape; `eventIdForm` also checks the bounds.
 */
export const EVENT_ID = /^(?:[1-9][0-9]{0,15}|(?:0|[1-9][0-9]{0,19})-(?:0|[1-9][0-9]{0,19}))$/;

/** Which store's id form an event id has: `sequence` (embedded) or `stream` (Redis). */
export type EventIdForm = "sequence" | "stream";

const MAX_U64 = "18446744073709551615";

function fitsU64(digits: string): boolean {
  return digits.length < MAX_U64.length || (digits.length === MAX_U64.length && digits <= MAX_U64);
}

/**
 * The form of `id` when it is an event id as writ hands them out (see
 * `EVENT_ID`), else undefined. Ids that only parse as one ("0", "007-1",
 * "17-0-0") are not: a store would read them as some other position, or as
 * none, and answer a page the caller did not ask for.
 */
export function eventIdForm(id: string): EventIdForm | undefined {
  if (!EVENT_ID.test(id)) return undefined;
  const parts = id.split("-");
  if (parts.length === 1) return Number.isSafeInteger(Number(id)) ? "sequence" : undefined;
  return parts.every(fitsU64) ? "stream" : undefined;
}

/**
 * The event id just before `id` in stream order, when `id` is an event id writ
 * hands out (see `eventIdForm`) and one can precede it; else undefined. A read
 * "after" it starts at `id` itself, which shows whether `id` was recorded.
 */
export function previousEventId(id: string): string | undefined {
  const form = eventIdForm(id);
  if (form === "sequence") return String(BigInt(id) - 1n);
  if (form !== "stream") return undefined;
  const [ms = "0", seq = "0"] = id.split("-");
  if (seq !== "0") return `${ms}-${BigInt(seq) - 1n}`;
  if (ms !== "0") return `${BigInt(ms) - 1n}-${MAX_U64}`;
  return undefined;
}
