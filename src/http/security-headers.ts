import type { ServerResponse } from "node:http";

/**
 * The security headers of every response writ's server writes: the API's
 * JSON, the console's pages, `/metrics`, and answers Hono never made (a
 * handler that crashed, a request the parser refused). A handler's own value
 * for one of them wins: Node's `writeHead` sets the handler's headers over
 * these. The console adds its Content-Security-Policy per page.
 */
export const SECURITY_HEADERS: ReadonlyMap<string, string> = new Map([
  ["Cross-Origin-Opener-Policy", "same-origin"],
  ["Cross-Origin-Resource-Policy", "same-origin"],
  ["Origin-Agent-Cluster", "?1"],
  ["Referrer-Policy", "no-referrer"],
  ["Strict-Transport-Security", "max-age=15552000; includeSubDomains"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-DNS-Prefetch-Control", "off"],
  ["X-Download-Options", "noopen"],
  ["X-Frame-Options", "SAMEORIGIN"],
  ["X-Permitted-Cross-Domain-Policies", "none"],
  ["X-XSS-Protection", "0"],
]);

/**
 * Sets {@link SECURITY_HEADERS} on a response before anything answers it: a
 * `request` listener of the server, ahead of Hono's. Set on Node's response
 * rather than on each WHATWG `Response` Hono builds, they cost a few property
 * writes instead of a `Headers` object per answer.
 */
export function setSecurityHeaders(_request: unknown, response: ServerResponse): void {
  for (const [name, value] of SECURITY_HEADERS) response.setHeader(name, value);
}
