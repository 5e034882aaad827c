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

/**
 * What is wrong with the shape of a parsed JSON value, if anything: it nests
 * deeper than `limit` objects/arrays, or one of its objects has a key named
 * `__proto__`. `JSON.parse` keeps such a key as data, but schemas drop it
 * without a word and much code reads it as the object's prototype: writ
 * refuses it rather than record something other than what was sent.
 * Iterative, so a hostile body thousands of levels deep cannot exhaust the stack.
 */
export function jsonShapeProblem(
  value: unknown,
  limit: number,
): "too_deep" | "proto_key" | undefined {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  let protoKey = false;
  while (stack.length > 0) {
    const item = stack.pop() as { value: unknown; depth: number };
    if (item.value === null || typeof item.value !== "object") continue;
    if (item.depth + 1 > limit) return "too_deep";
    if (!Array.isArray(item.value) && Object.hasOwn(item.value, "__proto__")) protoKey = true;
    for (const child of Object.values(item.value))
      stack.push({ value: child, depth: item.depth + 1 });
  }
  return protoKey ? "proto_key" : undefined;
}

/** Whether `value` nests at most `limit` objects/arrays deep. */
export function nestsWithin(value: unknown, limit: number): boolean {
  return jsonShapeProblem(value, limit) !== "too_deep";
}
