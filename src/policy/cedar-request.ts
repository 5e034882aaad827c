import type { CedarValueJson, EntityJson, TypeAndId } from "@cedar-policy/cedar-wasm/nodejs";
import type { JsonValue } from "../domain/json.js";
import type { PolicyQuery } from "../ports/policy.js";

/** A policy query in Cedar's terms: the request and the entities it mentions. */
export interface CedarRequest {
  readonly principal: TypeAndId;
  readonly action: TypeAndId;
  readonly resource: TypeAndId;
  readonly context: Record<string, CedarValueJson>;
  readonly entities: EntityJson[];
}

/** Raised when a query cannot be put in Cedar's terms; the engine then denies. */
export class PolicyInputError extends Error {
  override readonly name = "PolicyInputError";
}

/**
 * Context nesting beyond this is refused (and so denied): no honest request needs
 * it, and it bounds the recursion below.
 */
const MAX_CONTEXT_DEPTH = 32;

/**
 * Keys Cedar's JSON format reads as escapes (`{"__entity": …}` becomes an entity
 * reference, `{"__extn": …}` an extension value). Caller data must stay plain data,
 * or an agent could forge `principal`-like entities in its own context.
 */
const CEDAR_ESCAPE_KEYS: ReadonlySet<string> = new Set(["__entity", "__extn", "__expr"]);

/**
 * Builds the Cedar request for a query:
 * - principal `Agent::"<id>"` with attribute `owner` and every agent attribute;
 * - action `Action::"<action>"`;
 * - resource `Resource::"<resource>"` with attribute `uri`;
 * - context converted by `toCedarRecord`.
 */
export function toCedarRequest(query: PolicyQuery): CedarRequest {
  const principal = { type: "Agent", id: query.agent.id };
  const resource = { type: "Resource", id: query.resource };
  // fromEntries, not assignment: a key named "__proto__" must stay a plain attribute.
  const agentAttrs: Record<string, CedarValueJson> = Object.fromEntries([
    ...Object.entries(query.agent.attributes).filter(([, value]) => typeof value === "string"),
    // Last: an attribute that happens to be called "owner" must not replace the real one.
    ["owner", query.agent.owner],
  ]);
  return {
    principal,
    action: { type: "Action", id: query.action },
    resource,
    context: toCedarRecord(query.context, 0),
    entities: [
      { uid: principal, attrs: agentAttrs, parents: [] },
      { uid: resource, attrs: { uri: query.resource }, parents: [] },
    ],
  };
}

/**
 * JSON to Cedar values: strings and booleans as they are; safe integers → Long;
 * other numbers (fractions, beyond 2^53) → their decimal string, so a policy that
 * compares them errors and denies rather than silently skipping them; objects →
 * records; arrays → sets; `null` is dropped, as are Cedar's escape keys.
 */
function toCedarValue(value: JsonValue, depth: number): CedarValueJson | undefined {
  if (value === null) return undefined;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (Number.isSafeInteger(value)) return value;
    if (!Number.isFinite(value)) throw new PolicyInputError("context holds a non-finite number");
    return String(value);
  }
  if (depth >= MAX_CONTEXT_DEPTH) {
    throw new PolicyInputError(`context is nested deeper than ${MAX_CONTEXT_DEPTH} levels`);
  }
  if (Array.isArray(value)) {
    const items: CedarValueJson[] = [];
    for (const item of value as readonly JsonValue[]) {
      const converted = toCedarValue(item, depth + 1);
      if (converted !== undefined) items.push(converted);
    }
    return items;
  }
  if (typeof value === "object") {
    return toCedarRecord(value as { readonly [key: string]: JsonValue }, depth + 1);
  }
  throw new PolicyInputError(`context holds a value of type ${typeof value}`);
}

function toCedarRecord(
  object: { readonly [key: string]: JsonValue },
  depth: number,
): Record<string, CedarValueJson> {
  const entries: [string, CedarValueJson][] = [];
  for (const [key, item] of Object.entries(object)) {
    if (CEDAR_ESCAPE_KEYS.has(key)) continue;
    const converted = toCedarValue(item, depth);
    if (converted !== undefined) entries.push([key, converted]);
  }
  // fromEntries, not assignment: a key named "__proto__" must stay a plain field.
  return Object.fromEntries(entries);
}
