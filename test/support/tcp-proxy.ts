import { connect, createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";

/** A loopback TCP proxy that can be cut (every connection dropped, new ones refused) and healed. */
export interface TcpProxy {
  /** `redis://127.0.0.1:<port>`: the proxy's address, for a Redis client. */
  readonly url: string;
  readonly port: number;
  cut(): void;
  heal(): void;
  /**
   * Every open connection goes silent for good: nothing more passes either
   * way, and neither end is told (no reset, no close), as when a firewall or
   * NAT drops a connection's state or the server's host vanishes. New
   * connections pass as before.
   */
  stall(): void;
  /** New connections go to `port` from now on, as a DNS name moved to another server; open ones stay. */
  retarget(port: number): void;
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
  let target = targetPort;
  const sockets = new Set<Socket>();
  const pairs = new Set<readonly [Socket, Socket]>();
  const onConnection = (client: Socket): void => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(target, "127.0.0.1");
    const pair = [client, upstream] as const;
    pairs.add(pair);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        pairs.delete(pair);
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
    stall() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
      pairs.clear();
    },
    retarget(port) {
      target = port;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
