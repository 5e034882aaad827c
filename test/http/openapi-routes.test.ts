import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CUSTOMERS_EXPORT,
  createRequest,
  expectJson,
  keyOf,
  UNKNOWN_REQUEST_ID,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

interface Operation {
  security?: unknown[];
  parameters?: { name: string; in: string }[];
  requestBody?: { required?: boolean };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

/**
 * Routes the document leaves out on purpose: the document and its page, and
 * routes that speak another protocol (MCP's JSON-RPC, Slack's signed payloads,
 * the console's HTML forms).
 */
const UNDOCUMENTED = [
  /^\/openapi\.json$/,
  /^\/docs(\/|$)/,
  /^\/mcp$/,
  /^\/slack\//,
  /^\/console(\/|$)/,
];

let t: TestWrit;
let doc: OpenApiDocument;

beforeAll(async () => {
  t = await startTestWrit();
  doc = await expectJson<OpenApiDocument>(await t.call("GET", "/openapi.json"), 200);
});
afterAll(async () => {
  await t.close();
});

/** `METHOD /path/{param}` for every route the app answers, as the document spells paths. */
function appOperations(): string[] {
  const found = new Set<string>();
  for (const route of t.writ.app.routes) {
    // Middleware registered with `use` is listed under ALL; it answers no route of its own.
    if (route.method === "ALL") continue;
    if (UNDOCUMENTED.some((pattern) => pattern.test(route.path))) continue;
    found.add(`${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`);
  }
  return [...found].sort();
}

function documentedOperations(): [string, Operation][] {
  return Object.entries(doc.paths)
    .flatMap(([path, operations]) =>
      Object.entries(operations).map(
        ([method, operation]) =>
          [`${method.toUpperCase()} ${path}`, operation] as [string, Operation],
      ),
    )
    .sort(([a], [b]) => a.localeCompare(b));
}

describe("/openapi.json and the routes the app serves", () => {
  it("documents every route, and only routes that exist", () => {
    expect(documentedOperations().map(([name]) => name)).toEqual(appOperations());
  });

  it("documents, for every call that needs a key, the errors every such call can get", () => {
    for (const [name, operation] of documentedOperations()) {
      if (operation.security === undefined || operation.security.length === 0) continue;
      const statuses = Object.keys(operation.responses);
      const expected = ["400", "401", "403", "413", "500", "503"];
      if (name.includes("{id}")) expected.push("404");
      if (operation.requestBody !== undefined) expected.push("415");
      for (const status of expected) expect(statuses, `${name} ${status}`).toContain(status);
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) < 400) continue;
        expect(Object.keys(response.content ?? {}), `${name} ${status}`).toEqual([
          "application/json",
        ]);
      }
    }
  });

  it("documents already_reviewed for approve only: a reviewer who approved may still deny", async () => {
    const errors = (path: string) => {
      const responses = (doc.paths[path]?.post?.responses ?? {}) as Record<
        string,
        { description?: string }
      >;
      return responses["409"]?.description ?? "";
    };
    expect(errors("/v1/requests/{id}/approve")).toContain("already_reviewed");
    expect(errors("/v1/requests/{id}/deny")).not.toContain("already_reviewed");
    // What the deny route answers once its reviewer has approved: the deny.
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    await expectJson(
      await t.call("POST", `/v1/requests/${id}/approve`, { key: keyOf(t, "bob"), body: {} }),
      200,
    );
    const denied = await t.call("POST", `/v1/requests/${id}/deny`, {
      key: keyOf(t, "bob"),
      body: { reason: "Saw the row count; too many customers." },
    });
    expect(await expectJson(denied, 200)).toMatchObject({ status: "denied" });
  });

  it("documents no parameter as nullable: a query string has no null, and ?wait=null is refused", async () => {
    const nullable: string[] = [];
    for (const [name, operation] of documentedOperations()) {
      for (const parameter of operation.parameters ?? []) {
        const type = (parameter as { schema?: { type?: unknown } }).schema?.type;
        if (Array.isArray(type) && type.includes("null"))
          nullable.push(`${name} ${parameter.name}`);
      }
    }
    expect(nullable).toEqual([]);
    const refused = await t.call("GET", "/v1/events?wait=null", { key: keyOf(t, "dana") });
    expect(refused.status).toBe(400);
  });

  it("every status a call answers here is one its operation documents", async () => {
    const { id } = await createRequest(t, CUSTOMERS_EXPORT);
    const at = (path: string) => path.replace("{id}", id);
    const observed: [string, number][] = [];
    for (const [name, operation] of documentedOperations()) {
      const [method = "", path = ""] = name.split(" ");
      const secured = operation.security !== undefined && operation.security.length > 0;
      const hasBody = operation.requestBody !== undefined;
      const call = (options: Parameters<TestWrit["call"]>[2], where = at(path)) =>
        t.call(method, where, options);
      const results: Response[] = [await call({})];
      if (secured) {
        // A reviewer's key and an agent's: at least one is of a kind the call refuses.
        for (const who of ["bob", "report-agent"]) results.push(await call({ key: keyOf(t, who) }));
        const right = await rightKey(method, path);
        if (path.includes("{id}")) {
          results.push(await call({ key: right }, path.replace("{id}", UNKNOWN_REQUEST_ID)));
          results.push(await call({ key: right }, path.replace("{id}", "nope")));
        }
        if (hasBody) {
          results.push(await call({ key: right, body: "{bad" }));
          results.push(
            await call({ key: right, body: "a", headers: { "content-type": "text/plain" } }),
          );
          results.push(await call({ key: right, body: JSON.stringify({ x: "x".repeat(70_000) }) }));
        }
      }
      for (const res of results) observed.push([name, res.status]);
    }
    const undocumented = observed.filter(
      ([name, status]) =>
        documentedOperations().find(([n]) => n === name)?.[1].responses[String(status)] ===
        undefined,
    );
    expect(undocumented).toEqual([]);
  });
});

/** A key of a kind the operation serves: found by asking with each kind's key. */
async function rightKey(method: string, path: string): Promise<string> {
  for (const who of ["report-agent", "bob", "dana", "billing-api"]) {
    const res = await t.call(method, path.replace("{id}", UNKNOWN_REQUEST_ID), {
      key: keyOf(t, who),
      ...(method === "POST" ? { body: "{}" } : {}),
    });
    const body = (await res.json()) as { error?: { code: string } };
    if (body.error?.code !== "wrong_principal_kind") return keyOf(t, who);
  }
  throw new Error(`no key serves ${method} ${path}`);
}
