import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { WritError } from "../domain/errors.js";

/**
 * Script and styles come only from writ itself, nothing inline runs, the page
 * calls only writ's API, and nothing may frame it or post a form from it. It
 * shares its origin with the console, so third-party code on it could act as a
 * signed-in reviewer.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/**
 * Starts Swagger UI on the page. A file of its own, not an inline script, so
 * the policy needs no `'unsafe-inline'`. Query-string configuration stays off
 * (the default), so a crafted link cannot point the page at another document,
 * and a key typed into "Authorize" is kept in memory only, never in storage.
 */
function initScript(specUrl: string): string {
  return `"use strict";
window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(specUrl)},
  dom_id: "#swagger-ui",
  validatorUrl: null,
  queryConfigEnabled: false,
  persistAuthorization: false,
});
`;
}

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  /** A short hash of the content, put in the page's links so a year's caching is safe. */
  version: string;
}

/**
 * The files of swagger-ui-dist the page loads, with their types. With
 * `init.js` they are the only names served under `/docs/assets/`.
 */
const SWAGGER_FILES = [
  ["swagger-ui.css", CSS],
  ["swagger-ui-bundle.js", JS],
] as const;

function asset(content: Uint8Array | string, type: string): Asset {
  // Copied once into a plain byte array, which every response then shares.
  const body =
    typeof content === "string" ? new TextEncoder().encode(content) : new Uint8Array(content);
  const version = createHash("sha256").update(body).digest("hex").slice(0, 16);
  return { body, type, version };
}

/** Reads swagger-ui-dist's files from the installed package, once. */
async function loadAssets(specUrl: string): Promise<ReadonlyMap<string, Asset>> {
  const dir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const assets = new Map<string, Asset>();
  for (const [name, type] of SWAGGER_FILES) {
    assets.set(name, asset(await readFile(join(dir, name)), type));
  }
  assets.set("init.js", asset(initScript(specUrl), JS));
  return assets;
}

function page(assets: ReadonlyMap<string, Asset>): string {
  const href = (name: string) => `/docs/assets/${name}?v=${assets.get(name)?.version ?? ""}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>writ API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${href("swagger-ui.css")}">
<script src="${href("swagger-ui-bundle.js")}" defer></script>
<script src="${href("init.js")}" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
</body>
</html>
`;
}

export interface DocsOptions {
  /** Where the page fetches the OpenAPI document. */
  specUrl: string;
}

/**
 * The API docs at `/docs`: Swagger UI served from the installed
 * swagger-ui-dist package, never from a CDN, under a strict policy.
 */
export function createDocs(options: DocsOptions) {
  let loaded: Promise<ReadonlyMap<string, Asset>> | undefined;
  const assets = () => {
    loaded ??= loadAssets(options.specUrl).catch((error: unknown) => {
      loaded = undefined;
      throw error;
    });
    return loaded;
  };
  const app = new Hono();

  app.use(async function docsHeaders(c, next) {
    await next();
    c.header("Content-Security-Policy", CSP);
  });

  app.get("/", async (c) => {
    const html = page(await assets());
    // The page names its assets by content: asked again, it names new ones after an upgrade.
    c.header("Cache-Control", "no-cache");
    return c.html(html);
  });

  app.get("/assets/:name", async (c) => {
    // A fixed list of names, looked up as a whole: nothing else in the package
    // directory, and no path built from the request, is ever read.
    const found = (await assets()).get(c.req.param("name"));
    if (found === undefined) throw new WritError("not_found", "No such file.");
    c.header("Content-Type", found.type);
    c.header("Cache-Control", "public, max-age=31536000, immutable");
    return c.body(found.body);
  });

  return app;
}
