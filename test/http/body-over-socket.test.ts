import { request as httpRequest } from "node:http";
import { describe, expect, it } from "vitest";
import { allEvents, keyOf, S3_READ } from "../support/api.js";
import { servedTestWrit } from "../support/harness.js";

/**
 * How bodies arrive over a real socket: with a Content-Length, chunked, or not at
 * all. The server reads each kind its own way (see `requireJson`), so each is
 * sent here for real rather than through `app.request()`.
 */
describe("request bodies over a socket", () => {
  const served = servedTestWrit();

  interface Sent {
    method?: string;
    path: string;
    key: string;
    headers?: Record<string, string>;
    /** Written as one piece with a Content-Length, unless `chunks` is set. */
    body?: string;
    /** Written as separate chunks, with `Transfer-Encoding: chunked`. */
    chunks?: string[];
  }

  function send(sent: Sent): Promise<{ status: number; body: Record<string, unknown> }> {
    const url = new URL(sent.path, served.server.url);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        url,
        {
          method: sent.method ?? "POST",
          headers: {
            authorization: `Bearer ${sent.key}`,
            ...(sent.body !== undefined
              ? { "content-length": String(Buffer.byteLength(sent.body)) }
              : {}),
            ...sent.headers,
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (part: Buffer) => parts.push(part));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>,
            }),
          );
        },
      );
      req.on("error", reject);
      if (sent.chunks !== undefined) for (const chunk of sent.chunks) req.write(chunk);
      req.end(sent.body);
    });
  }

  const errorCode = (body: Record<string, unknown>) => (body.error as { code: string }).code;
  const JSON_TYPE = { "content-type": "application/json" };

  it("a body with a Content-Length is read and validated", async () => {
    const created = await send({
      path: "/v1/requests",
      key: keyOf(served.t, "report-agent"),
      headers: JSON_TYPE,
      body: JSON.stringify(S3_READ),
    });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe("approved");
  });

  it("a chunked body is read and validated", async () => {
    const json = JSON.stringify(S3_READ);
    const created = await send({
      path: "/v1/requests",
      key: keyOf(served.t, "report-agent"),
      headers: JSON_TYPE,
      chunks: [json.slice(0, 10), json.slice(10)],
    });
    expect(created.status).toBe(201);
  });

  it("a POST with no body at all collects a credential; a required body missing is a 400", async () => {
    const created = await send({
      path: "/v1/requests",
      key: keyOf(served.t, "report-agent"),
      headers: JSON_TYPE,
      body: JSON.stringify(S3_READ),
    });
    const collected = await send({
      path: `/v1/requests/${created.body.id as string}/credential`,
      key: keyOf(served.t, "report-agent"),
    });
    expect(collected.status).toBe(200);
    expect((collected.body.credential as { type: string }).type).toBe("jwt");

    const missing = await send({ path: "/v1/requests", key: keyOf(served.t, "report-agent") });
    expect(missing.status).toBe(400);
  });

  it("an oversized body is refused with 413, by its Content-Length or as it streams in, and records nothing", async () => {
    const before = (await allEvents(served.t)).length;
    const huge = JSON.stringify({ ...S3_READ, reason: "x".repeat(65 * 1024) });
    const declared = await send({
      path: "/v1/requests",
      key: keyOf(served.t, "report-agent"),
      headers: JSON_TYPE,
      body: huge,
    });
    expect(declared.status).toBe(413);
    expect(errorCode(declared.body)).toBe("payload_too_large");

    const streamed = await send({
      path: "/v1/requests",
      key: keyOf(served.t, "report-agent"),
      headers: JSON_TYPE,
      chunks: [huge.slice(0, 40_000), huge.slice(40_000)],
    });
    expect(streamed.status).toBe(413);
    expect(errorCode(streamed.body)).toBe("payload_too_large");

    // A GET carrying a body is bounded the same way.
    const get = await send({
      method: "GET",
      path: "/v1/requests",
      key: keyOf(served.t, "dana"),
      body: huge,
    });
    expect(get.status).toBe(413);
    expect((await allEvents(served.t)).length).toBe(before);
  });

  it("a body without a JSON content type is a 415, whichever way it is sent", async () => {
    const plain = { "content-type": "text/plain" };
    for (const sent of [{ body: JSON.stringify(S3_READ) }, { chunks: [JSON.stringify(S3_READ)] }]) {
      const res = await send({
        path: "/v1/requests",
        key: keyOf(served.t, "report-agent"),
        headers: plain,
        ...sent,
      });
      expect(res.status).toBe(415);
      expect(errorCode(res.body)).toBe("unsupported_media_type");
    }
  });
});
