import { randomBytes } from "node:crypto";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { generateKeyPair, SignJWT } from "jose";
import { type CommandParser, createClient, defineScript } from "redis";

// The issue path's floor on this machine: the libraries writ is built on
// (Hono on @hono/node-server, a node-redis Lua script per call, a jose EdDSA
// signature per credential) doing one credential's minimum of work, and none
// of writ's: no authentication, validation, policy, rate limit, audit log or
// metrics. Started by bench/limits.ts; prints its port once it listens.

const redisUrl = process.argv[2];
if (redisUrl === undefined) throw new TypeError("usage: bare-stack-server.ts <redis url>");

/** Stores a value and records it in a stream, as one script: writ's create and commit in miniature. */
const RECORD = defineScript({
  NUMBER_OF_KEYS: 2,
  SCRIPT: `redis.call("HSET", KEYS[1], "d", ARGV[1])
return redis.call("XADD", KEYS[2], "*", "data", ARGV[1])`,
  parseCommand(parser: CommandParser, key: string, stream: string, value: string) {
    parser.pushKeysLength([key, stream]);
    parser.push(value);
  },
  transformReply: (reply: unknown) => reply,
});

const client = createClient({ url: redisUrl, scripts: { record: RECORD } });
client.on("error", () => {});
await client.connect();
const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
const STREAM = "{bare}:events";

const app = new Hono();
app.post("/v1/requests", async (c) => {
  const input = (await c.req.json()) as Record<string, unknown>;
  const id = `req_${randomBytes(16).toString("base64url")}`;
  await client.record(`{bare}:req:${id}`, STREAM, JSON.stringify({ ...input, id }));
  return c.json({ id, status: "approved" }, 201);
});
app.post("/v1/requests/:id/credential", async (c) => {
  const id = c.req.param("id");
  const jti = `jti_${randomBytes(16).toString("base64url")}`;
  await client.record(`{bare}:req:${id}`, STREAM, JSON.stringify({ id, status: "issued", jti }));
  const token = await new SignJWT({ request_id: id })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
    .setIssuer("writ")
    .setSubject("bench-agent")
    .setAudience("billing-api")
    .setJti(jti)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(privateKey);
  return c.json({ credential: { type: "jwt", token } });
});

// The benchmark kills this process when it is done: nothing to close.
serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
  process.stdout.write(`${info.port}\n`);
});
