/** A JSON value, as accepted in request context and recorded in events. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

export type JsonObject = { readonly [key: string]: JsonValue };

/** In Unicode mode a well-formed pair is one code point, so this only sees lone halves. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Deeper than any event writ builds; bodies are limited far below this. */
const MAX_RECORDABLE_DEPTH = 64;

/**
 * Why `value` cannot be recorded exactly as JSON, or undefined if it can. The
 * audit log hashes the RFC 8785 form of every event, which has no NaN or
 * Infinity and no lone UTF-16 surrogates, and keeps only plain data: an event
 * holding anything else could be committed but never written to the log.
 */
export function unrecordableJson(value: unknown, depth = 0): string | undefined {
  switch (typeof value) {
    case "string":
      return LONE_SURROGATE.test(value) ? "a string with a lone UTF-16 surrogate" : undefined;
    case "number":
      return Number.isFinite(value) ? undefined : "a number too large to represent";
    case "boolean":
      return undefined;
    case "object": {
      if (value === null) return undefined;
      if (depth >= MAX_RECORDABLE_DEPTH) return "values nested too deeply";
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const problem = unrecordableJson(value[i], depth + 1);
          if (problem !== undefined) return problem;
        }
        return undefined;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return "a value that is not JSON data";
      for (const [key, item] of Object.entries(value)) {
        const problem = unrecordableJson(key, depth) ?? unrecordableJson(item, depth + 1);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    default:
      return "a value that is not JSON data";
  }
}
