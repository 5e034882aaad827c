import type { RouteConfig } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { WritError } from "../domain/errors.js";
import { jsonShapeProblem, unrecordableJson } from "../domain/json.js";

/** The body check as route middleware: it sets no variables of its own. */
export type JsonBodyMiddleware = MiddlewareHandler<{ Variables: object }>;

export interface JsonBodyOptions {
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number;
}

/** Deepest JSON nesting any request body may have; schemas set tighter limits per field. */
const MAX_BODY_DEPTH = 8;

/** Whether the request came from a socket through `@hono/node-server` (not `app.request()`). */
function servedByNode(c: Context): boolean {
  const env: unknown = c.env;
  return typeof env === "object" && env !== null && "incoming" in env;
}

/**
 * Reads and checks a request's body: its size (while it streams in, never
 * buffering more than the limit), its media type and its JSON, before the
 * route's schema sees it. A route lists it after its `principalKind`, so that a
 * caller writ has not authenticated, or whose key is of another kind, is
 * refused on its key alone and its body is never read.
 */
export function jsonBody(options: JsonBodyOptions): JsonBodyMiddleware {
  const { maxBodyBytes } = options;
  const tooLarge = () => {
    throw new WritError("payload_too_large", "The request body is too large.");
  };
  // A body with a Content-Length is checked by that header alone: Node's parser
  // never delivers more bytes than it declares, and the body is then read straight
  // from the socket, without a WHATWG stream per call. Any other body (chunked, or
  // a request built in process) is counted by Hono's limiter as it streams in.
  const streamingLimit = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  return async function jsonBody(c, next) {
    const length = c.req.header("content-length");
    const chunked = c.req.header("transfer-encoding") !== undefined;
    // Over HTTP/1.1 a request with neither header has no body (RFC 9112, 6.3).
    const empty = !chunked && length === undefined && servedByNode(c);
    if (length !== undefined && !chunked) {
      if (Number(length) > maxBodyBytes) return tooLarge();
    } else if (!empty) {
      // The limiter's error handler throws, so a body over the limit ends here.
      await streamingLimit(c, async () => {});
    }
    const hasBody = chunked || (length !== undefined && length !== "0");
    const type = c.req.header("content-type");
    if (c.req.method !== "POST") return next();
    if (!hasBody && type === undefined) {
      // Saying the body is empty spares the route's media-type check from building
      // a WHATWG request only to find nothing in it.
      if (empty) Object.defineProperty(c.req.raw, "body", { value: null });
      return next();
    }
    if (!/^application\/json\s*(;|$)/i.test(type ?? "")) {
      throw new WritError("unsupported_media_type", "Send the body as application/json.");
    }
    // Parsed once here (Hono caches the text for the validators). Bounding the depth
    // first keeps hostile bodies thousands of levels deep away from the
    // recursive schema validation, which would otherwise exhaust the stack; a
    // `__proto__` key anywhere is refused here because schemas drop it silently.
    const text = await c.req.text();
    if (text.length > 0) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new WritError("invalid_json", "The request body is not valid JSON.");
      }
      const problem = jsonShapeProblem(body, MAX_BODY_DEPTH);
      if (problem === "too_deep") {
        throw new WritError(
          "validation_failed",
          `The body nests deeper than ${MAX_BODY_DEPTH} levels.`,
        );
      }
      if (problem === "proto_key") {
        throw new WritError(
          "validation_failed",
          'The body has a key named "__proto__", which writ does not accept.',
        );
      }
      // JSON text can spell what the audit log cannot record exactly ("\ud800",
      // 1e400): refused here, before any of it reaches a record.
      const unrecordable = unrecordableJson(body);
      if (unrecordable !== undefined) {
        throw new WritError("validation_failed", `The body has ${unrecordable}.`);
      }
    }
    await next();
  };
}

/**
 * `route` with `readBody` run after its own middleware (its `principalKind`),
 * so that the body is read only once the caller's key and kind have passed.
 */
export function afterKind<R extends RouteConfig & { middleware: MiddlewareHandler }>(
  route: R,
  readBody: JsonBodyMiddleware,
): Omit<R, "middleware"> & { middleware: [R["middleware"], JsonBodyMiddleware] } {
  return { ...route, middleware: [route.middleware, readBody] };
}
