import { it } from "vitest";
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
it("probe", async () => {
  const named = z.json().openapi("JsonValue");
  const over = z.json().openapi({ description: "any JSON" , type: "object"});
  for (const schema of [z.object({ c: z.record(z.string(), named) }), z.object({ c: z.record(z.string(), over) }), z.object({ c: z.record(z.string(), z.unknown()).openapi({type:"object"}) })]) {
    const app = new OpenAPIHono();
    app.openapi(createRoute({ method: "post", path: "/x", request: { body: { content: { "application/json": { schema } } } }, responses: { 200: { description: "ok" } } }), (c) => c.json({}));
    try { const d = app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "x", version: "1" } }); console.log("ok", JSON.stringify(d).slice(0,400)); } catch (e) { console.log("ERR", (e as Error).message); }
  }
});
