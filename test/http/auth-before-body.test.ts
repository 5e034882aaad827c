import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  allEvents,
  CUSTOMERS_EXPORT,
  createRequest,
  expectError,
  keyOf,
  type RequestBody,
  S3_READ,
} from "../support/api.js";
import { servedTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

/**
 * The key is read before the body. A caller writ has not authenticated (or whose
 * key is of another kind) is refused on its key alone: writ neither reads nor
 * parses its body, so its JSON parser is not exposed to anonymous callers, and
 * the answer says nothing about what a body would need to pass.
 */
describe("authentication comes before the body", () => {
  let t: TestWrit;
  let pending: RequestBody;

  beforeAll(async () => {
    t = await startTestWrit();
    pending = await createRequest(t, CUSTOMERS_EXPORT);
  });
  afterAll(async () => {
    await t.close();
  });

  /** Every route that takes a body and a key, with the kind of key it is not for. */
  const endpoints = () => [
    { path: "/v1/requests", wrongKind: "bob" },
    { path: `/v1/requests/${pending.id}/approve`, wrongKind: "report-agent" },
    { path: `/v1/requests/${pending.id}/deny`, wrongKind: "report-agent" },
    { path: `/v1/requests/${pending.id}/cancel`, wrongKind: "bob" },
    { path: `/v1/requests/${pending.id}/complete`, wrongKind: "bob" },
    { path: `/v1/requests/${pending.id}/credential`, wrongKind: "bob" },
    { path: `/v1/requests/${pending.id}/revoke`, wrongKind: "report-agent" },
    { path: "/v1/tokens/consume", wrongKind: "report-agent" },
  ];

  const nested = (depth: number): string => `${"[".repeat(depth)}${"]".repeat(depth)}`;
  /** Bodies writ refuses before any schema: each would be a 400, 413 or 415 from a right key. */
  const badBodies: [string, { body: string; headers: Record<string, string> }][] = [
    ["oversized", { body: JSON.stringify({ reason: "x".repeat(70_000) }), headers: {} }],
    ["malformed", { body: "{bad", headers: {} }],
    ["not JSON", { body: "a=b", headers: { "content-type": "text/plain" } }],
    ["too deep", { body: nested(5000), headers: {} }],
    ["with __proto__", { body: '{"__proto__":{"admin":true}}', headers: {} }],
    ["wrongly typed", { body: '{"action":5,"token":5,"reason":5}', headers: {} }],
  ];

  it("an unauthenticated caller gets 401 unauthenticated, whatever its body", async () => {
    const answers: [string, string, number, string][] = [];
    for (const { path } of endpoints()) {
      for (const [label, sent] of badBodies) {
        for (const authorization of [undefined, "Bearer writ_agent_not-a-real-key"]) {
          const res = await t.call("POST", path, {
            body: sent.body,
            headers: {
              ...sent.headers,
              ...(authorization !== undefined ? { authorization } : {}),
            },
          });
          const body = (await res.json()) as { error: { code: string; message: string } };
          expect(res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
          expect(Object.keys(body)).toEqual(["error"]);
          expect(body.error.message).toEqual(expect.any(String));
          if (res.status === 401) {
            expect(res.headers.get("www-authenticate")).toBe('Bearer realm="writ"');
          }
          answers.push([path, label, res.status, body.error.code]);
        }
      }
    }
    expect(answers).toEqual(answers.map(([path, label]) => [path, label, 401, "unauthenticated"]));
  });

  it("a key of the wrong kind gets 403 wrong_principal_kind, whatever its body", async () => {
    const answers: [string, string, number, string][] = [];
    for (const { path, wrongKind } of endpoints()) {
      for (const [label, sent] of badBodies) {
        const res = await t.call("POST", path, {
          key: keyOf(t, wrongKind),
          body: sent.body,
          headers: sent.headers,
        });
        const body = (await res.json()) as { error: { code: string } };
        answers.push([path, label, res.status, body.error.code]);
      }
    }
    expect(answers).toEqual(
      answers.map(([path, label]) => [path, label, 403, "wrong_principal_kind"]),
    );
  });

  it("an authenticated caller of the right kind still gets each body's own error", async () => {
    const agent = keyOf(t, "report-agent");
    const post = (body: string, headers: Record<string, string> = {}) =>
      t.call("POST", "/v1/requests", { key: agent, body, headers });
    await expectError(
      await post(JSON.stringify({ ...S3_READ, reason: "x".repeat(70_000) })),
      413,
      "payload_too_large",
    );
    await expectError(await post("{bad"), 400, "invalid_json");
    await expectError(
      await post("a=b", { "content-type": "text/plain" }),
      415,
      "unsupported_media_type",
    );
    await expectError(await post(nested(5000)), 400, "validation_failed");
    await expectError(await post('{"__proto__":{}}'), 400, "validation_failed");
    await expectError(await post('{"action":5}'), 400, "validation_failed");
  });

  it("refused calls record nothing", async () => {
    const before = (await allEvents(t)).length;
    await t.call("POST", "/v1/requests", { body: "{bad" });
    await t.call("POST", "/v1/requests", { key: keyOf(t, "bob"), body: S3_READ });
    expect((await allEvents(t)).length).toBe(before);
  });

  it("/mcp: an unauthenticated oversized or malformed body is a 401 too", async () => {
    const headers = { accept: "application/json, text/event-stream" };
    for (const body of [JSON.stringify({ x: "x".repeat(70_000) }), "{bad"]) {
      const res = await t.call("POST", "/mcp", { body, headers });
      await expectError(res, 401, "unauthenticated");
    }
  });
});

describe("over a socket, writ answers an unauthenticated caller without reading its body", () => {
  const served = servedTestWrit();

  /**
   * Sends a request's head and the first chunk of a chunked body, never the end,
   * and resolves with the status line writ answers. A server that read the body
   * before the key would wait for the rest forever.
   */
  function statusOfUnfinished(path: string, headers: string[]): Promise<string> {
    const url = new URL(served.server.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(
          [
            `POST ${path} HTTP/1.1`,
            `Host: ${url.host}`,
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
            ...headers,
            "",
            "",
          ].join("\r\n"),
        );
        const chunk = `{"reason":"${"x".repeat(1000)}`;
        socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      });
      let received = "";
      socket.on("data", (data: Buffer) => {
        received += data.toString("latin1");
        const line = received.indexOf("\r\n");
        if (line >= 0) {
          socket.destroy();
          resolve(received.slice(0, line));
        }
      });
      socket.on("error", reject);
    });
  }

  it("401 for no key and 403 for a wrong kind, before the body has ended", async () => {
    expect(await statusOfUnfinished("/v1/requests", [])).toMatch(/^HTTP\/1\.1 401 /);
    expect(
      await statusOfUnfinished("/v1/tokens/consume", [
        `Authorization: Bearer ${keyOf(served.t, "report-agent")}`,
      ]),
    ).toMatch(/^HTTP\/1\.1 403 /);
    expect(await statusOfUnfinished("/mcp", [])).toMatch(/^HTTP\/1\.1 401 /);
  });
});
