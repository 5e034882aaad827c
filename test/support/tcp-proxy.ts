import { connect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";

/** A loopback TCP proxy that can be cut (every connection dropped, new ones refused) and healed. */
export interface TcpProxy {
  /** `redis://127.0.0.1:<port>`: the proxy's address, for a Redis client. */
  readonly url: string;
  readonly port: number;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

/**
 * A network partition between a client and the server on `targetPort`, on
 * demand. With `tls`, the proxy ends TLS and passes the plain bytes on
 * unchanged, as a load balancer in front of writ does.
 */
export async function startTcpProxy(
  targetPort: number,
  tls?: { readonly key: Buffer; readonly cert: Buffer },
): Promise<TcpProxy> {
  let cut = false;
  const sockets = new Set<Socket>();
  const onConnection = (client: Socket): void => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const server: Server =
    tls === undefined ? createTcpServer(onConnection) : createTlsServer(tls, onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    heal() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
