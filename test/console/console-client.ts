import { expect } from "vitest";
import type { TestWrit } from "../support/harness.js";

/**
 * A browser-like client for the console, in-process: it keeps cookies (by name,
 * path /console), follows nothing by itself, and posts forms as a browser does.
 */
export class ConsoleClient {
  readonly cookies = new Map<string, string>();
  /** Set-Cookie headers of the last response, raw. */
  lastSetCookies: string[] = [];

  constructor(
    private readonly t: TestWrit,
    private readonly headers: Record<string, string> = {},
  ) {}

  async request(
    method: string,
    path: string,
    options: { form?: Record<string, string> | string; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers, ...options.headers };
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    }
    let body: string | undefined;
    if (options.form !== undefined) {
      body =
        typeof options.form === "string"
          ? options.form
          : new URLSearchParams(options.form).toString();
      headers["content-type"] ??= "application/x-www-form-urlencoded";
    }
    const res = await this.t.writ.app.request(`http://writ.test${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    this.lastSetCookies = res.headers.getSetCookie();
    for (const line of this.lastSetCookies) {
      const [pair = "", ...attrs] = line.split(";").map((p) => p.trim());
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const expired = attrs.some(
        (a) => /^max-age=0$/i.test(a) || /^expires=thu, 01 jan 1970/i.test(a),
      );
      if (expired || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  get(path: string) {
    return this.request("GET", path);
  }

  post(path: string, form: Record<string, string> | string, headers?: Record<string, string>) {
    return this.request("POST", path, { form, ...(headers !== undefined ? { headers } : {}) });
  }

  /** The CSRF token in the page's forms. */
  static csrfOf(html: string): string {
    const match = /name="csrf" value="([A-Za-z0-9_-]+)"/.exec(html);
    if (match?.[1] === undefined) throw new Error("no CSRF field on the page");
    return match[1];
  }

  /** Opens the sign-in form and posts `key`; returns the answer to the post. */
  async signIn(key: string): Promise<Response> {
    const page = await this.get("/console/login");
    expect(page.status).toBe(200);
    const csrf = ConsoleClient.csrfOf(await page.text());
    return this.post("/console/login", { csrf, key });
  }

  /** The CSRF token of the signed-in session, read from a page. */
  async csrf(): Promise<string> {
    const res = await this.get("/console/pending");
    expect(res.status).toBe(200);
    return ConsoleClient.csrfOf(await res.text());
  }
}
