import { createHash, createHmac } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** One Web API call the fake received, with its arguments decoded as Slack decodes them. */
export interface SlackCall {
  readonly method: string;
  readonly args: Record<string, unknown>;
  /** The answer it gave: `ok`, an error code, `ratelimited` or `http_<status>`. */
  readonly outcome: string;
}

/** A programmed failure for the next calls of a method. */
export type SlackFailure =
  | { readonly ratelimited: number }
  | { readonly error: string }
  | { readonly status: number };

export interface FakeSlackUser {
  id: string;
  team_id?: string;
  deleted?: boolean;
  is_bot?: boolean;
  is_restricted?: boolean;
  is_ultra_restricted?: boolean;
  is_email_confirmed?: boolean;
  profile?: { email?: string };
}

export interface FakeSlack {
  /** The base URL to give the WebClient (`slackApiUrl`), ending in `/api/`. */
  readonly apiUrl: string;
  readonly calls: readonly SlackCall[];
  /** Calls of one method that Slack accepted. */
  accepted(method: string): SlackCall[];
  /** The next `count` calls of `method` fail with `failure`. */
  failNext(method: string, count: number, failure: SlackFailure): void;
  /** Drops the failures still programmed for `method`: Slack answers it again. */
  recover(method: string): void;
  /** Users `users.info` knows. */
  users: Map<string, FakeSlackUser>;
  /** The current blocks of a posted message, as `chat.update` left them. */
  message(channel: string, ts: string): { text: unknown; blocks: unknown } | undefined;
  /** Resolves once a Socket Mode client is connected (after `hello`). */
  socketConnected(timeoutMs?: number): Promise<void>;
  /**
   * Sends a Socket Mode envelope to the connected client and resolves with the
   * client's acknowledgement of it.
   */
  sendEnvelope(type: string, payload: object, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the first accepted call matching `match`, waiting up to `timeoutMs`. */
  waitFor(
    method: string,
    match?: (call: SlackCall) => boolean,
    timeoutMs?: number,
  ): Promise<SlackCall>;
  close(): Promise<void>;
}

/** Fields Slack's Web API takes as JSON inside form bodies. */
const JSON_FIELDS = new Set(["blocks", "attachments", "view", "metadata"]);

const KNOWN_BLOCKS = new Set(["header", "section", "actions", "context", "divider", "input"]);

/** A lone UTF-16 surrogate: half a character, which is not text Slack can read. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether `value` is a text object whose text is 1 to `max` characters long
 * (counted as Slack counts them, in UTF-16 code units) and well-formed.
 */
function textFits(value: unknown, max: number, type?: "plain_text" | "mrkdwn"): boolean {
  if (typeof value !== "object" || value === null) return false;
  const object = value as { type?: unknown; text?: unknown };
  if (object.type !== "plain_text" && object.type !== "mrkdwn") return false;
  if (type !== undefined && object.type !== type) return false;
  return (
    typeof object.text === "string" &&
    object.text.length >= 1 &&
    object.text.length <= max &&
    !LONE_SURROGATE.test(object.text)
  );
}

const fitsId = (id: unknown) => id === undefined || (typeof id === "string" && id.length <= 255);

/** One block's problem under Block Kit's limits, as Slack answers `invalid_blocks`. */
function blockProblem(block: Record<string, unknown>): boolean {
  if (!KNOWN_BLOCKS.has(String(block.type)) || !fitsId(block.block_id)) return true;
  switch (block.type) {
    case "header":
      return !textFits(block.text, 150, "plain_text");
    case "section": {
      const fields = block.fields as unknown[] | undefined;
      if (block.text === undefined && fields === undefined) return true;
      if (block.text !== undefined && !textFits(block.text, 3000)) return true;
      return (
        fields !== undefined &&
        (!Array.isArray(fields) ||
          fields.length > 10 ||
          fields.some((field) => !textFits(field, 2000)))
      );
    }
    case "context": {
      const elements = block.elements as unknown[];
      return (
        !Array.isArray(elements) ||
        elements.length === 0 ||
        elements.length > 10 ||
        elements.some((element) => !textFits(element, 2000))
      );
    }
    case "actions": {
      const elements = block.elements as Record<string, unknown>[];
      if (!Array.isArray(elements) || elements.length === 0 || elements.length > 25) return true;
      const ids = elements.map((e) => e.action_id);
      if (new Set(ids).size !== ids.length) return true;
      return elements.some(
        (e) =>
          (e.type === "button" && !textFits(e.text, 75, "plain_text")) ||
          !fitsId(e.action_id) ||
          (e.value !== undefined && (typeof e.value !== "string" || e.value.length > 2000)) ||
          (e.url !== undefined && (typeof e.url !== "string" || e.url.length > 3000)),
      );
    }
    case "input":
      return !textFits(block.label, 2000, "plain_text");
    default:
      return false;
  }
}

/** The limits of Block Kit the fake enforces, as Slack answers `invalid_blocks`. */
export function blocksProblem(blocks: unknown): string | undefined {
  if (blocks === undefined) return undefined;
  if (!Array.isArray(blocks) || blocks.length > 50) return "invalid_blocks";
  return (blocks as Record<string, unknown>[]).some(blockProblem) ? "invalid_blocks" : undefined;
}

/** The problem with a message's top-level `text` (Slack refuses over 40,000 characters). */
function textProblem(text: unknown): string | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== "string") return "invalid_arguments";
  return text.length > 40_000 ? "msg_too_long" : undefined;
}

/** A modal's problem: Slack caps its title and buttons at 24 characters. */
function viewProblem(view: Record<string, unknown>): string | undefined {
  if (String(view.private_metadata ?? "").length > 3000) return "invalid_arguments";
  if (!textFits(view.title, 24, "plain_text")) return "invalid_arguments";
  for (const button of [view.submit, view.close]) {
    if (button !== undefined && !textFits(button, 24, "plain_text")) return "invalid_arguments";
  }
  return blocksProblem(view.blocks);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function decode(req: IncomingMessage, raw: string): Record<string, unknown> {
  const type = req.headers["content-type"] ?? "";
  if (type.startsWith("application/json")) return JSON.parse(raw) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(raw)) {
    out[key] = JSON_FIELDS.has(key) ? JSON.parse(value) : value;
  }
  return out;
}

/**
 * A loopback Slack Web API that speaks the real wire protocol: bearer token
 * checked, form or JSON bodies, `{ ok, … }` answers, 429 with Retry-After, and
 * Block Kit limits enforced. It records every call.
 */
export async function startFakeSlack(
  botToken: string,
  options: { appToken?: string } = {},
): Promise<FakeSlack> {
  const calls: SlackCall[] = [];
  const failures = new Map<string, SlackFailure[]>();
  const messages = new Map<string, { text: unknown; blocks: unknown }>();
  const users = new Map<string, FakeSlackUser>();
  const recorded = new EventEmitter();
  recorded.setMaxListeners(0);
  let seq = 0;

  function answer(res: ServerResponse, status: number, body: object, headers = {}) {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
    res.end(JSON.stringify(body));
  }

  function handle(method: string, args: Record<string, unknown>): Record<string, unknown> {
    switch (method) {
      case "auth.test":
        return { ok: true, user_id: "UBOT", bot_id: "BBOT", team_id: "T0WRIT" };
      case "chat.postMessage": {
        const channel = args.channel;
        if (typeof channel !== "string" || channel === "")
          return { ok: false, error: "channel_not_found" };
        if (args.text === undefined && args.blocks === undefined)
          return { ok: false, error: "no_text" };
        const problem = textProblem(args.text) ?? blocksProblem(args.blocks);
        if (problem !== undefined) return { ok: false, error: problem };
        // Posting to a user id opens the bot's DM with them.
        const resolved = channel.startsWith("U") ? `D${channel.slice(1)}` : channel;
        const ts = `1768467600.${String(++seq).padStart(6, "0")}`;
        messages.set(`${resolved}/${ts}`, { text: args.text, blocks: args.blocks });
        return { ok: true, channel: resolved, ts };
      }
      case "chat.update": {
        const key = `${String(args.channel)}/${String(args.ts)}`;
        if (!messages.has(key)) return { ok: false, error: "message_not_found" };
        const problem = textProblem(args.text) ?? blocksProblem(args.blocks);
        if (problem !== undefined) return { ok: false, error: problem };
        messages.set(key, { text: args.text, blocks: args.blocks });
        return { ok: true, channel: args.channel, ts: args.ts };
      }
      case "chat.postEphemeral": {
        if (typeof args.channel !== "string" || typeof args.user !== "string")
          return { ok: false, error: "invalid_arguments" };
        const problem = textProblem(args.text) ?? blocksProblem(args.blocks);
        if (problem !== undefined) return { ok: false, error: problem };
        return { ok: true, message_ts: `1768467600.${String(++seq).padStart(6, "0")}` };
      }
      case "views.open": {
        const view = args.view as Record<string, unknown> | undefined;
        if (typeof args.trigger_id !== "string" || view === undefined)
          return { ok: false, error: "invalid_arguments" };
        const problem = viewProblem(view);
        if (problem !== undefined) return { ok: false, error: problem };
        return { ok: true, view: { id: `V${++seq}` } };
      }
      case "users.info": {
        const user = users.get(String(args.user));
        return user === undefined ? { ok: false, error: "user_not_found" } : { ok: true, user };
      }
      default:
        return { ok: false, error: "unknown_method" };
    }
  }

  const server: Server = createServer(async (req, res) => {
    const method = (req.url ?? "").replace(/^\/api\//, "").split("?")[0] ?? "";
    const raw = await readBody(req);
    let args: Record<string, unknown>;
    try {
      args = decode(req, raw);
    } catch {
      answer(res, 200, { ok: false, error: "invalid_json" });
      return;
    }
    const auth =
      req.headers.authorization ?? (args.token ? `Bearer ${String(args.token)}` : undefined);
    const record = (outcome: string) => {
      const call = { method, args, outcome };
      calls.push(call);
      recorded.emit("call", call);
    };
    if (req.method !== "POST") {
      answer(res, 405, { ok: false, error: "method_not_allowed" });
      return;
    }
    if (auth === undefined) {
      record("not_authed");
      answer(res, 200, { ok: false, error: "not_authed" });
      return;
    }
    if (method === "apps.connections.open") {
      // Socket Mode connects with the app-level token, never the bot token.
      const ok = options.appToken !== undefined && auth === `Bearer ${options.appToken}`;
      record(ok ? "ok" : "invalid_auth");
      answer(
        res,
        200,
        ok
          ? { ok: true, url: `ws://127.0.0.1:${port}/link/?ticket=t1` }
          : { ok: false, error: "invalid_auth" },
      );
      return;
    }
    if (auth !== `Bearer ${botToken}`) {
      record("invalid_auth");
      answer(res, 200, { ok: false, error: "invalid_auth" });
      return;
    }
    const failure = failures.get(method)?.shift();
    if (failure !== undefined) {
      if ("ratelimited" in failure) {
        record("ratelimited");
        answer(
          res,
          429,
          { ok: false, error: "ratelimited" },
          { "retry-after": String(failure.ratelimited) },
        );
      } else if ("status" in failure) {
        record(`http_${failure.status}`);
        answer(res, failure.status, { ok: false });
      } else {
        record(failure.error);
        answer(res, 200, { ok: false, error: failure.error });
      }
      return;
    }
    const result = handle(method, args);
    record(result.ok === true ? "ok" : String(result.error));
    answer(res, 200, result);
  });
  const sockets = new Set<Socket>();
  server.on("upgrade", (req, socket: Socket) => {
    const key = req.headers["sec-websocket-key"];
    if (typeof key !== "string" || !(req.url ?? "").startsWith("/link/")) {
      socket.destroy();
      return;
    }
    const accept = createHash("sha1")
      .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    sockets.add(socket);
    let buffered: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const parsed = readFrame(buffered);
        if (parsed === undefined) break;
        buffered = parsed.rest;
        if (parsed.opcode === 0x9) socket.write(wsFrame(0xa, parsed.payload));
        else if (parsed.opcode === 0x8) {
          socket.end(wsFrame(0x8, parsed.payload));
          sockets.delete(socket);
        } else if (parsed.opcode === 0x1) {
          recorded.emit("socket", JSON.parse(parsed.payload.toString("utf8")));
        }
      }
    });
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => sockets.delete(socket));
    socket.write(wsFrame(0x1, Buffer.from(JSON.stringify({ type: "hello", num_connections: 1 }))));
    recorded.emit("connected");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let envelopes = 0;

  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    users,
    accepted: (method) => calls.filter((c) => c.method === method && c.outcome === "ok"),
    failNext(method, count, failure) {
      failures.set(method, [...(failures.get(method) ?? []), ...Array(count).fill(failure)]);
    },
    recover(method) {
      failures.delete(method);
    },
    message: (channel, ts) => messages.get(`${channel}/${ts}`),
    socketConnected(timeoutMs = 5000) {
      if (sockets.size > 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no Socket Mode connection")), timeoutMs);
        recorded.once("connected", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    sendEnvelope(type, payload, timeoutMs = 5000) {
      const envelopeId = `env-${++envelopes}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          recorded.off("socket", listen);
          reject(new Error(`no ack for ${envelopeId}`));
        }, timeoutMs);
        const listen = (message: Record<string, unknown>) => {
          if (message.envelope_id !== envelopeId) return;
          clearTimeout(timer);
          recorded.off("socket", listen);
          resolve(message);
        };
        recorded.on("socket", listen);
        const text = JSON.stringify({
          envelope_id: envelopeId,
          type,
          payload,
          accepts_response_payload: false,
        });
        for (const socket of sockets) socket.write(wsFrame(0x1, Buffer.from(text)));
      });
    },
    waitFor(method, match = () => true, timeoutMs = 5000) {
      const test = (call: SlackCall) =>
        call.method === method && call.outcome === "ok" && match(call);
      const found = calls.find(test);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          recorded.off("call", listen);
          reject(new Error(`no accepted ${method} call within ${timeoutMs} ms`));
        }, timeoutMs);
        const listen = (call: SlackCall) => {
          if (!test(call)) return;
          clearTimeout(timer);
          recorded.off("call", listen);
          resolve(call);
        };
        recorded.on("call", listen);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Headers Slack sends with a signed request: `v0=` HMAC-SHA256 of `v0:<ts>:<body>`. */
export function slackSignature(
  signingSecret: string,
  body: string,
  timestampSeconds: number,
): Record<string, string> {
  const signature = createHmac("sha256", signingSecret)
    .update(`v0:${timestampSeconds}:${body}`)
    .digest("hex");
  return {
    "x-slack-request-timestamp": String(timestampSeconds),
    "x-slack-signature": `v0=${signature}`,
  };
}

/** An interaction body as Slack posts it: form-encoded `payload=<json>`. */
export function interactionBody(payload: object): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

let triggers = 0;

/** A `block_actions` payload for a click on one of writ's buttons. */
export function blockAction(args: {
  user: string;
  actionId: string;
  requestId: string;
  channel?: string;
  messageTs?: string;
  team?: string;
}): object {
  const channel = args.channel ?? "C0APPROVALS";
  return {
    type: "block_actions",
    team: { id: args.team ?? "T0WRIT", domain: "writ-test" },
    user: { id: args.user, username: args.user.toLowerCase(), team_id: args.team ?? "T0WRIT" },
    api_app_id: "A0WRIT",
    token: "verification-token-unused",
    container: {
      type: "message",
      message_ts: args.messageTs ?? "1768467600.000001",
      channel_id: channel,
    },
    trigger_id: `${++triggers}.1768467600.${Math.random().toString(16).slice(2)}`,
    channel: { id: channel, name: "approvals" },
    message: { ts: args.messageTs ?? "1768467600.000001", text: "writ" },
    response_url: "https://hooks.slack.invalid/actions/T0WRIT/1/abc",
    actions: [
      {
        type: "button",
        action_id: args.actionId,
        block_id: "writ_actions",
        value: args.requestId,
        action_ts: "1768467600.1",
      },
    ],
  };
}

/** A `view_submission` of writ's deny modal. */
export function denySubmission(args: {
  user: string;
  requestId: string;
  reason: string | null;
  channel?: string;
  team?: string;
}): object {
  return {
    type: "view_submission",
    team: { id: args.team ?? "T0WRIT", domain: "writ-test" },
    user: { id: args.user, username: args.user.toLowerCase(), team_id: args.team ?? "T0WRIT" },
    api_app_id: "A0WRIT",
    token: "verification-token-unused",
    trigger_id: `${++triggers}.1768467600.${Math.random().toString(16).slice(2)}`,
    view: {
      id: "V0DENY",
      type: "modal",
      callback_id: "writ_deny_reason",
      private_metadata: JSON.stringify({
        requestId: args.requestId,
        ...(args.channel !== undefined ? { channelId: args.channel } : {}),
      }),
      hash: "1768467600.abc",
      state: { values: { reason: { reason: { type: "plain_text_input", value: args.reason } } } },
    },
  };
}

/** A server-to-client WebSocket frame (unmasked, final). */
function wsFrame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : payload.length < 65_536
        ? Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(payload.length)]);
  return Buffer.concat([head, payload]);
}

function bigLength(length: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(length));
  return out;
}

/** Reads one client frame (clients always mask), or undefined until it has fully arrived. */
function readFrame(buffer: Buffer): { opcode: number; payload: Buffer; rest: Buffer } | undefined {
  if (buffer.length < 2) return undefined;
  const opcode = (buffer[0] as number) & 0x0f;
  const masked = ((buffer[1] as number) & 0x80) !== 0;
  let length = (buffer[1] as number) & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const mask = masked ? buffer.subarray(offset, offset + 4) : undefined;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (mask !== undefined) {
    for (let i = 0; i < payload.length; i++)
      payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
  }
  return { opcode, payload, rest: buffer.subarray(offset + length) };
}

/** Options for {@link postInteraction}; defaults sign correctly, now, as a form post. */
export interface PostInteractionOptions {
  /** Unix seconds for the signature's timestamp (default: the writ's clock). */
  at?: number;
  secret: string;
  headers?: Record<string, string>;
  type?: string;
}

/**
 * Posts an interaction payload to writ's `/slack/events`, signed as Slack signs
 * it (a string payload is sent as the raw body).
 */
export function postInteraction(
  writ: { app: { request: (path: string, init: RequestInit) => Response | Promise<Response> } },
  nowMs: number,
  payload: object | string,
  options: PostInteractionOptions,
): Promise<Response> {
  const body = typeof payload === "string" ? payload : interactionBody(payload);
  const at = options.at ?? Math.floor(nowMs / 1000);
  return Promise.resolve(
    writ.app.request("/slack/events", {
      method: "POST",
      headers: {
        "content-type": options.type ?? "application/x-www-form-urlencoded",
        ...slackSignature(options.secret, body, at),
        ...options.headers,
      },
      body,
    }),
  );
}

/** Waits for an ephemeral message to `user` that contains `contains`. */
export function ephemeralTo(slack: FakeSlack, user: string, contains: string) {
  return slack.waitFor(
    "chat.postEphemeral",
    (c) => c.args.user === user && JSON.stringify(c.args).includes(contains),
  );
}
