import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { servedTestWrit } from "../support/harness.js";

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/**
 * One GET over a real socket, with the path sent exactly as given: `fetch` and
 * `URL` would resolve `..` before it left, and the server must not rely on that.
 */
function get(base: string, path: string): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: "GET" }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const SWAGGER_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

describe("the API docs page", () => {
  const served = servedTestWrit();

  it("links only to writ's own files, under a strict policy", async () => {
    const page = await get(served.server.url, "/docs");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["content-security-policy"]).toBe(CSP);
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    const html = page.body.toString("utf8");
    // No inline script: every script has a src.
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
    const links = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1] as string);
    expect(links.length).toBeGreaterThanOrEqual(3);
    for (const link of links) {
      if (link.startsWith("data:")) continue;
      expect(link, link).toMatch(/^\/docs\/assets\/[a-z-]+\.(js|css)\?v=[0-9a-f]+$/);
    }
  });

  it("serves each file the page links to, with its type and a year's caching", async () => {
    const html = (await get(served.server.url, "/docs")).body.toString("utf8");
    const links = [...html.matchAll(/\s(?:src|href)="(\/docs\/assets\/[^"]*)"/g)].map(
      (m) => m[1] as string,
    );
    const byName = new Map<string, Answer>();
    for (const link of links) {
      const answer = await get(served.server.url, link);
      expect(answer.status, link).toBe(200);
      expect(answer.headers["cache-control"], link).toBe("public, max-age=31536000, immutable");
      expect(answer.headers["content-security-policy"], link).toBe(CSP);
      expect(answer.headers["x-content-type-options"], link).toBe("nosniff");
      byName.set(new URL(link, "http://x").pathname.slice("/docs/assets/".length), answer);
    }
    expect([...byName.keys()].sort()).toEqual([
      "init.js",
      "swagger-ui-bundle.js",
      "swagger-ui.css",
    ]);
    const css = byName.get("swagger-ui.css") as Answer;
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(css.body.equals(await readFile(join(SWAGGER_DIR, "swagger-ui.css")))).toBe(true);
    const bundle = byName.get("swagger-ui-bundle.js") as Answer;
    expect(bundle.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(bundle.body.equals(await readFile(join(SWAGGER_DIR, "swagger-ui-bundle.js")))).toBe(
      true,
    );
    const init = byName.get("init.js") as Answer;
    expect(init.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(init.body.toString("utf8")).toContain('"/openapi.json"');
  });

  it("serves nothing else from the package, however the name is spelled", async () => {
    const attempts = [
      "/docs/assets/../package.json",
      "/docs/assets/..%2fpackage.json",
      "/docs/assets/..%2Fpackage.json",
      "/docs/assets/%2e%2e%2fpackage.json",
      "/docs/assets/%2e%2e/package.json",
      "/docs/assets/..%5cpackage.json",
      "/docs/assets/%252e%252e%252fpackage.json",
      "/docs/assets/package.json",
      "/docs/assets/index.html",
      "/docs/assets/swagger-ui.js",
      "/docs/assets/swagger-ui-bundle.js.map",
      "/docs/assets/swagger-ui-bundle.js%00.css",
      "/docs/assets/__proto__",
      "/docs/assets/constructor",
      "/docs/assets/",
      "/docs/assets/swagger-ui.css/",
      "/docs/assets/./swagger-ui.css/../../../package.json",
    ];
    for (const path of attempts) {
      const answer = await get(served.server.url, path);
      expect(answer.status, path).toBe(404);
      expect(answer.body.toString("utf8"), path).not.toContain("swagger-ui-dist");
    }
  });

  it("serves the OpenAPI document to the page alone, not to other sites' scripts", async () => {
    const doc = await get(served.server.url, "/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.headers["content-type"]).toMatch(/^application\/json/);
    expect(doc.headers["access-control-allow-origin"]).toBeUndefined();
    expect(doc.headers["x-content-type-options"]).toBe("nosniff");
  });
});
