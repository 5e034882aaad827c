import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AuthEnv } from "../auth.js";
import { json } from "./openapi-responses.js";

const Health = z.object({ status: z.literal("ok") }).openapi("Health");
const Readiness = z.object({ status: z.enum(["ready", "not_ready"]) }).openapi("Readiness");
const Jwks = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())) })
  .openapi("Jwks", { description: "RFC 7517 JSON Web Key Set." });

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness: the process answers (no key needed)",
  responses: { 200: { description: "Alive", ...json(Health) } },
});

const readyRoute = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "Readiness: the store and the audit log can serve, and the replica is not stopping",
  responses: {
    200: { description: "Ready", ...json(Readiness) },
    503: { description: "Not ready: send no new requests here", ...json(Readiness) },
  },
});

const jwksRoute = createRoute({
  method: "get",
  path: "/.well-known/jwks.json",
  tags: ["credentials"],
  summary: "The public keys that verify writ JWTs (no key needed)",
  responses: { 200: { description: "The JWKS", ...json(Jwks) } },
});

export interface PublicRouteOptions {
  jwks: () => { keys: object[] };
  /** Whether this replica can take new requests. */
  ready: () => Promise<boolean>;
}

/** Routes outside `/v1` that need no key: health, readiness and the JWKS. */
export function publicRoutes(app: OpenAPIHono<AuthEnv>, options: PublicRouteOptions) {
  app.openapi(healthRoute, (c) => c.json({ status: "ok" as const }, 200));
  app.openapi(readyRoute, async (c) => {
    const ready = await options.ready();
    return ready
      ? c.json({ status: "ready" as const }, 200)
      : c.json({ status: "not_ready" as const }, 503);
  });
  app.openapi(jwksRoute, (c) => {
    c.header("Cache-Control", "public, max-age=300");
    return c.json(options.jwks() as { keys: Record<string, unknown>[] }, 200);
  });
}
