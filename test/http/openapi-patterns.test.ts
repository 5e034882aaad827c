import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMERS_EXPORT, expectJson } from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

/** The parts of a JSON Schema this test reads. */
interface Schema {
  pattern?: string;
  example?: unknown;
  examples?: unknown[];
  properties?: Record<string, Schema>;
  [key: string]: unknown;
}

interface Parameter {
  name: string;
  in: string;
  schema?: Schema;
  example?: unknown;
}

interface OpenApiDocument {
  components: { schemas: Record<string, Schema> };
  paths: Record<string, Record<string, { parameters?: Parameter[] }>>;
}

/**
 * JSON Schema 2020-12, which OpenAPI 3.1 uses, reads a `pattern` as an
 * ECMA-262 regular expression with Unicode semantics, and with no flags of its
 * own: this is how a conforming client, gateway or test tool compiles it.
 */
const compile = (pattern: string) => new RegExp(pattern, "u");

/** Every `pattern` in the document, by its JSON pointer, with the examples next to it. */
function patternsOf(value: unknown, pointer = ""): { pointer: string; schema: Schema }[] {
  if (value === null || typeof value !== "object") return [];
  const found: { pointer: string; schema: Schema }[] = [];
  const schema = value as Schema;
  if (typeof schema.pattern === "string") found.push({ pointer, schema });
  for (const [key, child] of Object.entries(value)) {
    found.push(...patternsOf(child, `${pointer}/${key}`));
  }
  return found;
}

/** The values a document offers as examples of a schema that has a pattern. */
function examplesOf(schema: Schema): unknown[] {
  return [
    ...(schema.example !== undefined ? [schema.example] : []),
    ...(Array.isArray(schema.examples) ? schema.examples : []),
  ];
}

let t: TestWrit;
let doc: OpenApiDocument;

beforeAll(async () => {
  t = await startTestWrit();
  doc = await expectJson<OpenApiDocument>(await t.call("GET", "/openapi.json"), 200);
});

afterAll(async () => {
  await t.close();
});

/** The published schema of one body field. */
function field(schema: string, name: string): Schema {
  const found = doc.components.schemas[schema]?.properties?.[name];
  expect(found, `${schema}.${name}`).toBeDefined();
  return found as Schema;
}

/** The published schema of one query or path parameter. */
function parameter(path: string, name: string): Parameter {
  const found = doc.paths[path]?.get?.parameters?.find((p) => p.name === name);
  expect(found, `${path} ${name}`).toBeDefined();
  return found as Parameter;
}

describe("the patterns /openapi.json publishes", () => {
  it("are all valid Unicode ECMA-262 regular expressions, and the document's examples match them", () => {
    const patterns = patternsOf(doc);
    expect(patterns.length).toBeGreaterThan(10);
    for (const { pointer, schema } of patterns) {
      const pattern = schema.pattern as string;
      // A regular expression literal's flags ("…$/u") would be matched as text.
      expect(pattern, pointer).not.toMatch(/\/[dgimsuvy]*$/);
      expect(() => compile(pattern), pointer).not.toThrow();
      for (const example of examplesOf(schema)) {
        expect(compile(pattern).test(String(example)), `${pointer}: ${example}`).toBe(true);
      }
    }
    // Examples given on an object or a parameter, away from the field's own schema.
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      if (schema.example === null || typeof schema.example !== "object") continue;
      for (const [key, value] of Object.entries(schema.example)) {
        const pattern = schema.properties?.[key]?.pattern;
        if (pattern === undefined) continue;
        expect(compile(pattern).test(String(value)), `${name}.${key}: ${value}`).toBe(true);
      }
    }
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const p of operation.parameters ?? []) {
          const pattern = p.schema?.pattern;
          if (pattern === undefined || p.example === undefined) continue;
          expect(compile(pattern).test(String(p.example)), `${method} ${path} ${p.name}`).toBe(
            true,
          );
        }
      }
    }
  });

  const TEXT_FIELDS: [schema: string, field: string][] = [
    ["CreateRequest", "resource"],
    ["CreateRequest", "audience"],
    ["CreateRequest", "reason"],
    ["CreateRequest", "ticket"],
    ["Approve", "comment"],
    ["Deny", "reason"],
    ["Revoke", "reason"],
  ];

  it.each(TEXT_FIELDS)(
    "%s.%s accepts what the server accepts and refuses what it refuses",
    (schema, name) => {
      const pattern = compile(field(schema, name).pattern as string);
      for (const accepted of [
        "db://prod/customers",
        "Quarterly churn, ticket DATA-1234",
        "Grüße 🎉 データ",
      ]) {
        expect(pattern.test(accepted), accepted).toBe(true);
      }
      // Control characters, a bidirectional override and isolate, an unpaired surrogate.
      for (const refused of [
        "a\u0007b",
        "tab\there",
        "a\u0085b",
        "a\u202Eb",
        "a\u2066b",
        "a\uD800b",
      ]) {
        expect(pattern.test(refused), JSON.stringify(refused)).toBe(false);
      }
    },
  );

  it("publishes for the agent filter of GET /v1/requests the same pattern", () => {
    const agent = parameter("/v1/requests", "agent");
    expect(agent.schema?.pattern).toBe(field("CreateRequest", "resource").pattern);
  });

  it("describes values the server itself accepts", async () => {
    const body = {
      ...CUSTOMERS_EXPORT,
      audience: "billing-api",
      reason: "Grüße 🎉, ticket DATA-1234",
      ticket: "DATA-1234",
    };
    for (const [key, value] of Object.entries(body)) {
      const pattern = doc.components.schemas.CreateRequest?.properties?.[key]?.pattern;
      if (pattern !== undefined) expect(compile(pattern).test(String(value)), key).toBe(true);
    }
    const res = await t.call("POST", "/v1/requests", { key: t.keys["report-agent"], body });
    expect(res.status).toBe(201);
    const refused = await t.call("POST", "/v1/requests", {
      key: t.keys["report-agent"],
      body: { ...body, reason: "a\u202Eb" },
    });
    expect(refused.status).toBe(400);
  });

  it("publishes the event cursor of GET /v1/events as the ids writ hands out", () => {
    const pattern = compile(parameter("/v1/events", "after").schema?.pattern as string);
    for (const id of ["1", "42", "1768467600000-3", "0-1", "18446744073709551615-0"]) {
      expect(pattern.test(id), id).toBe(true);
    }
    for (const id of ["0", "007", "1-2-3", "17-", "-1", "1768467600000-03", "abc"]) {
      expect(pattern.test(id), id).toBe(false);
    }
  });
});
