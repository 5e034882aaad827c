// A resource server that accepts writ tokens: each route names the one action
// and resource it performs, and a token is good for exactly that, once.
//
//   WRIT_URL=http://127.0.0.1:8787 WRIT_RS_KEY=writ_rs_… npx tsx examples/resource-server/server.ts
//
// Then, as the demo agent of `npx writ dev`:
//   export WRIT_URL=http://127.0.0.1:8787
//   export WRIT_KEY=$(node -p "require('./.writ/dev-identities.json').agents[0].key")
//   TOKEN=$(npx writ request --action s3:GetObject --resource arn:aws:s3:::demo-reports/q3.csv \
//     --audience billing-api --wait)
//   curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8788/reports/q3.csv   # 200
//   curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8788/reports/q3.csv   # 401 token_replayed
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createWritVerifier } from "writ/verify";
import { type WritAuthEnv, writAuth } from "writ/verify/hono";

export interface ResourceServerOptions {
  /** The writ server. */
  writUrl: string;
  /** This server's writ key (`writ keygen --kind resource_server`). */
  resourceServerKey: string;
  /** The audience writ issues this server's tokens for. */
  audience: string;
}

export function createResourceServer(options: ResourceServerOptions) {
  // One verifier for every route: one cache of writ's public keys.
  const verifier = createWritVerifier(options);
  const app = new Hono<WritAuthEnv>();

  // The resource comes from the path: a token for q3.csv does not open q4.csv.
  app.get(
    "/reports/:name",
    writAuth({
      verifier,
      action: "s3:GetObject",
      resource: (c) => `arn:aws:s3:::demo-reports/${c.req.param("name")}`,
    }),
    (c) => {
      const grant = c.get("writ");
      return c.json({ report: c.req.param("name"), rows: 3, served_to: grant.agent });
    },
  );

  // A fixed resource: the whole customer table, exported once per approval.
  app.post(
    "/exports/customers",
    writAuth({ verifier, action: "db:export", resource: "db://prod/customers" }),
    (c) => c.json({ export: "started", request: c.get("writ").requestId }, 202),
  );

  return app;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { WRIT_URL, WRIT_RS_KEY } = process.env;
  if (WRIT_URL === undefined || WRIT_RS_KEY === undefined) {
    process.stderr.write("Set WRIT_URL and WRIT_RS_KEY (the resource server's key).\n");
    process.exit(2);
  }
  const app = createResourceServer({
    writUrl: WRIT_URL,
    resourceServerKey: WRIT_RS_KEY,
    audience: process.env.WRIT_AUDIENCE ?? "billing-api",
  });
  const port = Number(process.env.PORT ?? 8788);
  serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, () =>
    process.stdout.write(`resource server on http://127.0.0.1:${port}\n`),
  );
}
