/**
 * Canonical JSON as defined by RFC 8785 (JSON Canonicalization Scheme): object keys
 * sorted by UTF-16 code units, no whitespace, strings and numbers serialized exactly as
 * ECMAScript's `JSON.stringify` does. The audit log hashes this form, so two writers
 * (or a writer and a verifier) agree on the bytes whatever order they built keys in.
 *
 * Only plain JSON data is accepted. Anything `JSON.stringify` would silently drop or
 * reshape (`undefined`, functions, class instances, `toJSON`) and anything RFC 8785
 * forbids (NaN, Infinity, lone surrogates) throws a `TypeError`: an audit entry must
 * never hash something other than what the caller meant to record.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value, 0);
}

/**
 * Deep enough for any real event; a circular structure reaches it too, which is how
 * cycles are rejected without tracking every ancestor.
 */
const MAX_DEPTH = 1000;

/** In Unicode mode a well-formed pair is one code point, so this only sees lone halves. */
const LONE_SURROGATE = /\p{Surrogate}/u;
/** Anything JSON escapes, or a surrogate half that needs the lone-surrogate check. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters JSON escapes.
const NEEDS_CARE = /[\u0000-\u001f"\\\ud800-\udfff]/;

function serialize(value: unknown, depth: number): string {
  switch (typeof value) {
    case "string":
      return serializeString(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new TypeError("canonical JSON cannot represent NaN or Infinity");
      }
      // ECMAScript number serialization is the one RFC 8785 prescribes (-0 becomes "0").
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      if (value === null) return "null";
      if (depth >= MAX_DEPTH) {
        throw new TypeError("canonical JSON input is nested too deeply or is circular");
      }
      return Array.isArray(value)
        ? serializeArray(value, depth + 1)
        : serializeObject(value, depth + 1);
    default:
      throw new TypeError(`canonical JSON cannot represent a value of type ${typeof value}`);
  }
}

function serializeString(value: string): string {
  // Most strings (ids, types, times) need no escaping; quoting them directly is several
  // times faster than JSON.stringify and yields the same bytes.
  if (!NEEDS_CARE.test(value)) return `"${value}"`;
  if (LONE_SURROGATE.test(value)) {
    throw new TypeError("canonical JSON cannot represent a string with a lone surrogate");
  }
  return JSON.stringify(value);
}

function serializeArray(value: readonly unknown[], depth: number): string {
  let out = "[";
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ",";
    // Index access (not iteration) so that holes surface as undefined and are rejected.
    out += serialize(value[i], depth);
  }
  return `${out}]`;
}

function serializeObject(value: object, depth: number): string {
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError("canonical JSON accepts plain objects and arrays only");
  }
  const record = value as Record<string, unknown>;
  // The default sort compares UTF-16 code units, which is the order RFC 8785 requires.
  const keys = Object.keys(record).sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (i > 0) out += ",";
    out += `${serializeString(key)}:${serialize(record[key], depth)}`;
  }
  return `${out}}`;
}
