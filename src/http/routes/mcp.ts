import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { WritError } from "../../domain/errors.js";
import type { IdentityDirectory } from "../../ports/identity.js";
import { createWritClient } from "../../sdk/client.js";
import { type AuthEnv, principalAuth, principalKind } from "../auth.js";

export interface McpRouteOptions {
  /** Whether `/mcp` is served at all. */
  enabled: boolean;
  /** DANGEROUS: offer the tool that returns credentials to the model. */
  returnCredentials: boolean;
}

/**
 * The MCP SDK, loaded on the first `/mcp` call rather than at start: the CLI
 * loads this app for `writ dev`, and no other command should pay for it.
 */
function loadMcp() {
  return Promise.all([
    import("../../mcp/server.js"),
    import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"),
  ]);
}

/** The in-process address the MCP tools call the API on; it never leaves the process. */
const INTERNAL_URL = "http://writ.internal/";

/**
 * `/mcp`: the writ MCP server over Streamable HTTP, for agents. The caller
 * authenticates as on the API (a writ agent key or an OIDC token) and every
 * tool acts as that agent, by calling this same app in-process with the
 * caller's own bearer: the same validation, policy and audit as `/v1`.
 * Stateless (no MCP session): each POST carries its own JSON-RPC exchange.
 */
export function mcpRoutes(
  app: Hono<AuthEnv>,
  identities: IdentityDirectory,
  options: McpRouteOptions & { maxBodyBytes: number; version: string },
) {
  if (!options.enabled) return;
  app.use("/mcp", async function sameOrigin(c, next) {
    // Browsers send Origin; a page on another site must not drive the tools.
    // (A DNS-rebound page passes this check, Origin and Host agreeing: what
    // stops it is the bearer, which a browser never adds on its own.)
    const origin = c.req.header("origin");
    if (origin !== undefined) {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host === undefined || host !== c.req.header("host")) {
        // The Streamable HTTP transport requires 403 for a refused Origin.
        return c.json(
          {
            jsonrpc: "2.0",
            error: { code: -32000, message: "Cross-origin MCP calls are not accepted." },
            id: null,
          },
          403,
        );
      }
    }
    await next();
  });
  app.use("/mcp", principalAuth({ identities }));
  // The body is bounded only once the key and its kind have passed: a caller
  // writ has not authenticated is refused without any of its body being read.
  const limit = bodyLimit({
    maxSize: options.maxBodyBytes,
    onError: () => {
      throw new WritError("payload_too_large", "The request body is too large.");
    },
  });
  app.all("/mcp", principalKind("agent"), limit, async (c) => {
    if (c.req.method !== "POST") {
      // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
      return c.json(
        { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null },
        405,
        { Allow: "POST" },
      );
    }
    // principalAuth accepted exactly this shape.
    const bearer = (c.req.header("authorization") ?? "").slice("Bearer ".length);
    const client = createWritClient({
      url: INTERNAL_URL,
      key: bearer,
      fetch: async (input, init) => app.fetch(new Request(input, init)),
    });
    const [{ createWritMcpServer }, { WebStandardStreamableHTTPServerTransport }] = await loadMcp();
    const server = createWritMcpServer({
      client,
      returnCredentials: options.returnCredentials,
      version: options.version,
    });
    const transport = new WebStandardStreamableHTTPServerTransport({
      // No sessionIdGenerator: stateless.
      enableJsonResponse: true,
      maxRequestBodySize: options.maxBodyBytes,
    });
    await server.connect(transport);
    // With no session, a cancellation can only name a request in the same POST;
    // the SDK never answers a cancelled request: the exchange, which waits for
    // every answer, would stay open for as long as the caller likes. Such
    // notifications are ignored (as the protocol allows); a caller cancels by
    // hanging up.
    const deliver = transport.onmessage;
    transport.onmessage = (message, extra) => {
      if ("method" in message && message.method === "notifications/cancelled") return;
      deliver?.(message, extra);
    };
    // A caller that hangs up ends its tool calls (and their long-polls) too.
    // Closed, the transport never answers the exchange, so the call ends here,
    // logged as 499 (client closed request), rather than never.
    let hangUp = () => {};
    const hungUp = new Promise<Response>((resolve) => {
      hangUp = () => {
        void server.close();
        resolve(new Response(null, { status: 499 }));
      };
    });
    c.req.raw.signal.addEventListener("abort", hangUp, { once: true });
    if (c.req.raw.signal.aborted) hangUp();
    try {
      const response = await Promise.race([transport.handleRequest(c.req.raw), hungUp]);
      // A tool's answer may carry a credential (mcp.return_credentials), as the
      // API's collect does: never kept by a cache on the way.
      response.headers.set("Cache-Control", "no-store");
      return response;
    } finally {
      c.req.raw.signal.removeEventListener("abort", hangUp);
      await server.close();
    }
  });
}
