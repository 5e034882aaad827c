import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One call the gate holds until the test lets it through or answers it. */
export interface HeldCall {
  /** Resolves once a matching call has arrived (and is held). */
  readonly arrived: Promise<void>;
  /** Passes the held call on to writ, and its answer back. */
  release(): void;
  /** Answers the held call itself, as a proxy in front of writ would. */
  answer(status: number, body: string): void;
}

/**
 * A loopback HTTP proxy in front of writ that passes calls through, except the
 * next one matching a hold, which waits for the test: a window in which the
 * client has sent a call and has no answer yet.
 */
export interface HttpGate {
  readonly url: string;
  hold(method: string, path: RegExp): HeldCall;
  close(): Promise<void>;
}

interface Hold {
  readonly method: string;
  readonly path: RegExp;
  arrive(): void;
  readonly decision: Promise<{ status: number; body: string } | undefined>;
}

export async function startHttpGate(target: string): Promise<HttpGate> {
  const holds: Hold[] = [];

  async function pass(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && name !== "host" && name !== "connection") {
        headers.set(name, value);
      }
    }
    try {
      const upstream = await fetch(new URL(req.url ?? "/", target), {
        method: req.method ?? "GET",
        headers,
        redirect: "manual",
        ...(body.length > 0 ? { body } : {}),
      });
      const text = await upstream.text();
      res.writeHead(upstream.status, {
        "content-type": upstream.headers.get("content-type") ?? "text/plain",
      });
      res.end(text);
    } catch {
      res.writeHead(502).end("bad gateway");
    }
  }

  const server = createServer(async (req, res) => {
    // Like a proxy that aborts the upstream call when its client goes away, a
    // held call whose client died is never passed on.
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableEnded) clientGone = true;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const index = holds.findIndex(
      (h) => h.method === req.method && h.path.test(new URL(req.url ?? "/", target).pathname),
    );
    const hold = index === -1 ? undefined : holds.splice(index, 1)[0];
    if (hold === undefined) {
      await pass(req, res, body);
      return;
    }
    hold.arrive();
    const decision = await hold.decision;
    if (clientGone) return;
    if (decision === undefined) await pass(req, res, body);
    else res.writeHead(decision.status, { "content-type": "application/json" }).end(decision.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hold(method, path) {
      let arrive: () => void = () => {};
      const arrived = new Promise<void>((resolve) => {
        arrive = resolve;
      });
      let decide: (d: { status: number; body: string } | undefined) => void = () => {};
      const decision = new Promise<{ status: number; body: string } | undefined>((resolve) => {
        decide = resolve;
      });
      holds.push({ method, path, arrive, decision });
      return {
        arrived,
        release: () => decide(undefined),
        answer: (status, body) => decide({ status, body }),
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
