import { EventEmitter } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/** One request a recording server received. */
export interface RecordedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The status it was answered with. */
  readonly status: number;
}

/** A loopback HTTP receiver (a Teams webhook, a SIEM endpoint) that records what it gets. */
export interface RecordingServer {
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** The next `statuses.length` requests to `path` get these statuses (then 200). */
  answerNext(path: string, ...statuses: number[]): void;
  /** Resolves with the first request answered 2xx that matches, waiting up to `timeoutMs`. */
  waitFor(match: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export async function startRecordingServer(): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const planned = new Map<string, number[]>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? "/";
    const status = planned.get(path)?.shift() ?? 200;
    const request = {
      path,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
      status,
    };
    requests.push(request);
    res.writeHead(status, status === 429 ? { "retry-after": "0" } : {});
    res.end(status < 300 ? "1" : "unavailable");
    events.emit("request", request);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    answerNext(path, ...statuses) {
      planned.set(path, [...(planned.get(path) ?? []), ...statuses]);
    },
    waitFor(match, timeoutMs = 5000) {
      const test = (r: RecordedRequest) => r.status < 300 && match(r);
      const found = requests.find(test);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off("request", listen);
          reject(new Error(`no matching request within ${timeoutMs} ms`));
        }, timeoutMs);
        const listen = (r: RecordedRequest) => {
          if (!test(r)) return;
          clearTimeout(timer);
          events.off("request", listen);
          resolve(r);
        };
        events.on("request", listen);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
