import { connect, type Socket } from "node:net";

/** One HTTP answer, as far as the benchmark reads it. */
export interface BenchResponse {
  readonly status: number;
  readonly body: string;
}

interface Pending {
  readonly resolve: (response: BenchResponse) => void;
  readonly reject: (error: Error) => void;
}

const HEADER_END = Buffer.from("\r\n\r\n");

/**
 * A keep-alive HTTP/1.1 connection with one request in flight at a time: a
 * client of the benchmark. It parses only what writ and the echo server send
 * (a status line, `Content-Length` or chunked bodies), so the load generator
 * spends its core on load, not on a general-purpose client.
 */
export class BenchConnection {
  readonly #socket: Socket;
  readonly #host: string;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #closed = false;

  private constructor(socket: Socket, host: string) {
    this.#socket = socket;
    this.#host = host;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const fail = (error: Error) => {
      this.#closed = true;
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
  }

  static open(url: string): Promise<BenchConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port) }, () =>
        resolve(new BenchConnection(socket, `${hostname}:${port}`)),
      );
      socket.once("error", reject);
    });
  }

  request(method: string, path: string, key?: string, body?: string): Promise<BenchResponse> {
    if (this.#closed) return Promise.reject(new Error("connection closed"));
    if (this.#pending !== undefined) throw new TypeError("one request at a time per connection");
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${this.#host}\r\n`;
    if (key !== undefined) head += `Authorization: Bearer ${key}\r\n`;
    if (body !== undefined) {
      head += `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
    }
    head += "\r\n";
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket.write(body === undefined ? head : head + body);
    });
  }

  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }

  #parse(): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    const end = this.#buffer.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.#buffer.subarray(0, end).toString("latin1");
    const status = Number(head.slice(9, 12));
    const lengthMatch = /\r\ncontent-length: *(\d+)/i.exec(head);
    const start = end + 4;
    let body: string;
    let consumed: number;
    if (lengthMatch !== null) {
      const length = Number(lengthMatch[1]);
      if (this.#buffer.length < start + length) return;
      body = this.#buffer.subarray(start, start + length).toString("utf8");
      consumed = start + length;
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const chunks: Buffer[] = [];
      let at = start;
      for (;;) {
        const lineEnd = this.#buffer.indexOf("\r\n", at);
        if (lineEnd < 0) return;
        const size = Number.parseInt(this.#buffer.subarray(at, lineEnd).toString("latin1"), 16);
        if (this.#buffer.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          consumed = lineEnd + 4;
          break;
        }
        chunks.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(chunks).toString("utf8");
    } else {
      body = "";
      consumed = start;
    }
    this.#buffer = this.#buffer.subarray(consumed);
    this.#pending = undefined;
    pending.resolve({ status, body });
  }
}
