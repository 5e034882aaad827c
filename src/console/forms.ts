import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { WritError } from "../domain/errors.js";
import { PRINTABLE, PRINTABLE_MESSAGE } from "../domain/text.js";

/** Console forms are a few short fields; anything larger is refused before parsing. */
export const MAX_FORM_BYTES = 16 * 1024;

/**
 * Reads a posted form. Only `application/x-www-form-urlencoded` (what a browser sends
 * for these forms) is accepted: no multipart, no JSON, no file uploads.
 */
export async function readForm(c: Context): Promise<URLSearchParams> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    throw new WritError("unsupported_media_type", "Send the form as a browser does.");
  }
  const text = await c.req.text();
  if (Buffer.byteLength(text) > MAX_FORM_BYTES) {
    throw new WritError("payload_too_large", "The form is too large.");
  }
  return new URLSearchParams(text);
}

/** A single text field: trimmed, at most `max` characters, printable; "" when absent. */
export function textField(form: URLSearchParams, name: string, max: number): string {
  const values = form.getAll(name);
  if (values.length > 1) throw new WritError("validation_failed", `${name} was sent twice.`);
  const value = (values[0] ?? "").trim();
  if (value.length > max) {
    throw new WritError("validation_failed", `${name} is longer than ${max} characters.`);
  }
  if (!PRINTABLE.test(value)) {
    throw new WritError("validation_failed", `${name} ${PRINTABLE_MESSAGE}.`);
  }
  return value;
}

/** Constant-time comparison of two tokens; different lengths are simply unequal. */
export function tokensEqual(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a.length === 0) return false;
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Whether a state-changing request comes from this console's own pages. With
 * SameSite=Strict cookies and the per-session token this is a third, cheap
 * layer: browsers name the page's origin on every POST.
 *
 * `httpsOnly` (secure cookies) says by configuration that browsers reach the
 * console over HTTPS: behind a proxy that ends TLS and sends no
 * X-Forwarded-Proto, writ sees plain http, yet the page's origin is https.
 */
export function sameOrigin(c: Context, httpsOnly: boolean): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  const own = new URL(c.req.url);
  const forwarded = c.req.header("x-forwarded-proto");
  const hosts = [own.origin];
  if (forwarded === "https" || forwarded === "http") hosts.push(`${forwarded}://${own.host}`);
  if (httpsOnly) hosts.push(`https://${own.host}`);
  return hosts.includes(origin);
}
