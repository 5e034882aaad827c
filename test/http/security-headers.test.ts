import { once } from "node:events";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { SECURITY_HEADERS, setSecurityHeaders } from "../../src/http/security-headers.js";
import { keyOf, S3_READ } from "../support/api.js";
import { servedTestWrit } from "../support/harness.js";

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One request over a real socket. */
function send(
  base: string,
  path: string,
  options: { method?: string; key?: string; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, base),
      {
        method: options.method ?? "GET",
        headers: {
          ...(options.key !== undefined ? { authorization: `Bearer ${options.key}` } : {}),
          ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

function expectSecurityHeaders(answer: Answer): void {
  for (const [name, value] of SECURITY_HEADERS) {
    expect(answer.headers[name.toLowerCase()], name).toBe(value);
  }
}

describe("security headers on every response the server writes", () => {
  const served = servedTestWrit();

  it("are on answers of every kind: JSON, errors, redirects and console pages", async () => {
    const agent = keyOf(served.t, "report-agent");
    const answers = [
      await send(served.server.url, "/healthz"),
      await send(served.server.url, "/v1/requests", {
        method: "POST",
        key: agent,
        body: JSON.stringify(S3_READ),
      }),
      await send(served.server.url, "/v1/requests"),
      await send(served.server.url, "/v1/requests", { method: "POST", key: agent, body: "{" }),
      await send(served.server.url, "/no/such/path"),
      await send(served.server.url, "/console"),
      await send(served.server.url, "/console/login"),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 201, 401, 400, 404, 303, 200]);
    for (const answer of answers) expectSecurityHeaders(answer);
    // A route's own headers are kept alongside them.
    const login = answers[6] as Answer;
    expect(login.headers["content-security-policy"]).toContain("default-src");
    expect(login.headers["cache-control"]).toBe("no-store");
  });

  it("give way to a handler that sets one of them itself", async () => {
    const plain = createServer((_req, res) => {
      res.writeHead(200, { "X-Frame-Options": "DENY", "Content-Type": "text/plain" });
      res.end("ok");
    });
    plain.prependListener("request", setSecurityHeaders);
    plain.listen(0, "127.0.0.1");
    await once(plain, "listening");
    try {
      const answer = await send(`http://127.0.0.1:${(plain.address() as AddressInfo).port}`, "/");
      expect(answer.headers["x-frame-options"]).toBe("DENY");
      expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    } finally {
      plain.close();
    }
  });
});
