import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWritMcpServer } from "../../src/mcp/server.js";
import { createWritClient, type WritClient } from "../../src/sdk/client.js";
import type { RunningServer } from "../../src/server.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf, S3_READ } from "../support/api.js";
import { capturingLogger } from "../support/captured-log.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";
import { waitFor, within } from "../support/wait.js";

let t: TestWrit;
let server: RunningServer;

const TOOLS = ["writ_cancel_request", "writ_check_request", "writ_complete", "writ_request_access"];

function clientFor(id: string, fetchImpl?: typeof fetch): WritClient {
  return createWritClient({
    url: server.url,
    key: keyOf(t, id),
    ...(fetchImpl !== undefined ? { fetch: fetchImpl } : {}),
  });
}

/** A fetch that resolves `longPollSent` once a long-poll has gone out. */
function watchLongPolls() {
  let sent: () => void = () => {};
  const longPollSent = new Promise<void>((done) => {
    sent = done;
  });
  const watched: typeof fetch = (input, init) => {
    if (String(input).includes("wait=")) sent();
    return fetch(input, init);
  };
  return { fetch: watched, longPollSent };
}

/** An MCP client from the SDK, connected in memory to a writ MCP server for the agent. */
async function inMemory(writ: WritClient, returnCredentials = false) {
  const mcp = createWritMcpServer({ client: writ, returnCredentials });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await mcp.connect(serverSide);
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(clientSide);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown>) {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function structured(result: CallToolResult): Record<string, unknown> {
  expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
  return result.structuredContent as Record<string, unknown>;
}

function errorOf(result: CallToolResult): { code: string; message: string } {
  expect(result.isError).toBe(true);
  const first = result.content[0];
  if (first?.type !== "text") throw new Error("expected text content");
  return (JSON.parse(first.text) as { error: { code: string; message: string } }).error;
}

beforeAll(async () => {
  t = await startTestWrit();
  server = await serveTestWrit(t);
});

afterAll(async () => {
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
});

describe("the writ MCP server, through a real MCP client", () => {
  it("lists the tools, with descriptions that say when to call them", async () => {
    const client = await inMemory(clientFor("report-agent"));
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    expect(byName.get("writ_request_access")?.description).toMatch(/before you perform it/);
    expect(byName.get("writ_request_access")?.inputSchema.required).toEqual(
      expect.arrayContaining(["action", "resource", "reason"]),
    );
    expect(byName.get("writ_complete")?.description).toMatch(/as soon as you finish/);
    await client.close();
  });

  it("drives a request through approval, and no tool result carries the credential", async () => {
    const watch = watchLongPolls();
    const client = await inMemory(clientFor("report-agent", watch.fetch));
    const results: CallToolResult[] = [];
    const tool = async (name: string, args: Record<string, unknown>) => {
      const result = await call(client, name, args);
      results.push(result);
      return result;
    };

    const asked = structured(await tool("writ_request_access", { ...CUSTOMERS_EXPORT }));
    expect(asked).toMatchObject({
      status: "pending",
      decision: "approve",
      approver_groups: ["data-owners"],
      pending_approvals: 2,
    });
    const id = String(asked.request_id);
    expect(structured(await tool("writ_check_request", { request_id: id }))).toMatchObject({
      status: "pending",
    });

    await clientFor("bob").approve(id);
    const waiting = tool("writ_check_request", { request_id: id, wait_seconds: 30 });
    await watch.longPollSent;
    await clientFor("carol").approve(id);
    const decided = structured(await waiting);
    expect(decided).toMatchObject({ status: "approved", approved_by: ["bob", "carol"] });
    expect(String(decided.next_step)).toMatch(/out of band/);

    // The agent's runtime collects the credential itself, outside the model.
    const credential = await clientFor("report-agent").collectCredential(id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    expect(structured(await tool("writ_check_request", { request_id: id }))).toMatchObject({
      status: "issued",
    });
    const done = structured(await tool("writ_complete", { request_id: id }));
    expect(done.status).toBe("completed");
    expect(structured(await tool("writ_complete", { request_id: id })).status).toBe("completed");

    const everything = JSON.stringify(results);
    expect(everything).not.toContain(credential.token);
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    await client.close();
  });

  it("does not ask again for the report it just took, once a used credential is reported done", async () => {
    const client = await inMemory(clientFor("report-agent"));
    const asked = structured(
      await call(client, "writ_request_access", { ...S3_READ, reason: "weekly summary" }),
    );
    const id = String(asked.request_id);
    const credential = await clientFor("report-agent").collectCredential(id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    await clientFor("billing-api").consume(credential.token);
    const used = structured(await call(client, "writ_check_request", { request_id: id }));
    expect(used.status).toBe("used");
    expect(String(used.next_step)).toMatch(/writ_complete/);

    const done = structured(await call(client, "writ_complete", { request_id: id }));
    expect(done.status).toBe("used");
    // The model did what the step said: telling it to do it again invites a loop.
    expect(String(done.next_step)).not.toMatch(/writ_complete/);
    expect(String(done.next_step)).toMatch(/reported/);
    await client.close();
  });

  it("answers denials, bad ids and unknown requests with the API's codes", async () => {
    const client = await inMemory(clientFor("report-agent"));
    const denied = errorOf(
      await call(client, "writ_request_access", {
        action: "iam:AttachRolePolicy",
        resource: "arn:aws:iam::1:role/app",
        audience: "x",
        reason: "need it",
      }),
    );
    expect(denied.code).toBe("policy_denied");
    const unknown = errorOf(
      await call(client, "writ_check_request", { request_id: "req_AAAAAAAAAAAAAAAAAAAAAA" }),
    );
    expect(unknown.code).toBe("not_found");
    const pending = structured(await call(client, "writ_request_access", { ...CUSTOMERS_EXPORT }));
    const early = errorOf(
      await call(client, "writ_complete", { request_id: String(pending.request_id) }),
    );
    expect(early.code).toBe("not_completable");
    const cancelled = structured(
      await call(client, "writ_cancel_request", { request_id: String(pending.request_id) }),
    );
    expect(cancelled.status).toBe("cancelled");
    // Input the schema refuses never reaches writ.
    const bad = await call(client, "writ_check_request", { request_id: "../../etc/passwd" });
    expect(bad.isError).toBe(true);
    const noReason = await call(client, "writ_request_access", { ...S3_READ });
    expect(noReason.isError).toBe(true);
    await client.close();
  });

  it("passes on_behalf_of on, so that person cannot approve, and refuses a malformed one", async () => {
    const client = await inMemory(clientFor("report-agent"));
    const asked = structured(
      await call(client, "writ_request_access", { ...CUSTOMERS_EXPORT, on_behalf_of: "bob" }),
    );
    const id = String(asked.request_id);
    expect((await clientFor("dana").get(id)).on_behalf_of).toBe("bob");
    await expect(clientFor("bob").approve(id)).rejects.toMatchObject({
      code: "self_approval_forbidden",
    });
    const bad = await call(client, "writ_request_access", {
      ...CUSTOMERS_EXPORT,
      on_behalf_of: "bob ",
    });
    expect(bad.isError).toBe(true);
    await client.close();
  });

  it("gives up waiting at wait_seconds with the request still pending, not an error", async () => {
    const client = await inMemory(clientFor("report-agent"));
    const asked = structured(await call(client, "writ_request_access", { ...CUSTOMERS_EXPORT }));
    const started = Date.now();
    const still = structured(
      await call(client, "writ_check_request", { request_id: asked.request_id, wait_seconds: 1 }),
    );
    expect(still.status).toBe("pending");
    expect(Date.now() - started).toBeLessThan(10_000);
    await client.close();
  });

  it("returns credentials only when the operator turns it on", async () => {
    const client = await inMemory(clientFor("report-agent"), true);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toContain("writ_collect_credential");
    const asked = structured(
      await call(client, "writ_request_access", { ...S3_READ, reason: "r" }),
    );
    expect(String(asked.next_step)).toMatch(/writ_collect_credential/);
    const collected = await call(client, "writ_collect_credential", {
      request_id: asked.request_id,
    });
    const first = collected.content[0];
    expect(first?.type === "text" ? first.text : "").toMatch(/"token":"eyJ/);
    await client.close();
  });
});

describe("/mcp over Streamable HTTP", () => {
  async function httpClient(key: string) {
    const transport = new StreamableHTTPClientTransport(new URL("/mcp", server.url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    });
    const client = new Client({ name: "test-agent", version: "1.0.0" });
    await client.connect(transport);
    return client;
  }

  it("serves the same tools to an agent authenticated like the API", async () => {
    const client = await httpClient(keyOf(t, "report-agent"));
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    const asked = structured(
      await call(client, "writ_request_access", { ...S3_READ, reason: "r" }),
    );
    expect(asked).toMatchObject({ status: "approved", decision: "allow" });
    expect(JSON.stringify(asked)).not.toMatch(/eyJ/);
    const request = await clientFor("report-agent").get(String(asked.request_id));
    expect(request.agent).toBe("report-agent");
    await client.close();
  });

  it("refuses unauthenticated, non-agent, cross-origin, oversized and non-POST calls", async () => {
    const initialize = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "x", version: "1" },
      },
    });
    const post = (headers: Record<string, string>, body = initialize) =>
      fetch(new URL("/mcp", server.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...headers,
        },
        body,
      });
    const codeOf = async (res: Response) =>
      ((await res.json()) as { error: { code: string } }).error.code;

    const anonymous = await post({});
    expect(anonymous.status).toBe(401);
    expect(await codeOf(anonymous)).toBe("unauthenticated");
    const bogus = await post({ authorization: "Bearer writ_agent_nope" });
    expect(bogus.status).toBe(401);
    const reviewer = await post({ authorization: `Bearer ${keyOf(t, "bob")}` });
    expect(reviewer.status).toBe(403);
    expect(await codeOf(reviewer)).toBe("wrong_principal_kind");
    const agent = { authorization: `Bearer ${keyOf(t, "report-agent")}` };
    const crossOrigin = await post({ ...agent, origin: "https://evil.example" });
    expect(crossOrigin.status).toBe(403);
    const huge = await post(agent, JSON.stringify({ pad: "x".repeat(70_000) }));
    expect(huge.status).toBe(413);
    const garbage = await post(agent, "{not json");
    expect(garbage.status).toBeGreaterThanOrEqual(400);
    expect(garbage.status).toBeLessThan(500);
    const get = await fetch(new URL("/mcp", server.url), {
      headers: { ...agent, accept: "text/event-stream" },
    });
    expect(get.status).toBe(405);
    const ok = await post(agent);
    expect(ok.status).toBe(200);
    // Answers can carry a credential (mcp.return_credentials): no cache keeps them.
    expect(ok.headers.get("cache-control")).toBe("no-store");
  });

  it("refuses a call from another origin with 403 Forbidden, as the transport requires", async () => {
    const url = new URL("/mcp", server.url);
    const call = (origin: string) =>
      fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${keyOf(t, "report-agent")}`,
          origin,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      });
    for (const origin of ["https://evil.example", "null"]) {
      const refused = await call(origin);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
    }
    const same = await call(url.origin);
    expect(same.status).toBe(200);
  });

  it("answers a batch that cancels its own request instead of holding the call open", async () => {
    // Stateless: a cancellation can only name a request in the same POST, and
    // a request left unanswered would keep the exchange open for as long as
    // the caller likes, outside every long-poll limit.
    const res = await fetch(new URL("/mcp", server.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2025-03-26",
        authorization: `Bearer ${keyOf(t, "report-agent")}`,
      },
      body: JSON.stringify([
        { jsonrpc: "2.0", id: 1, method: "ping" },
        { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } },
      ]),
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as unknown;
    const answers = Array.isArray(body) ? body : [body];
    expect(answers).toEqual([{ jsonrpc: "2.0", id: 1, result: {} }]);
  });
});

describe("writ mcp (stdio)", () => {
  it("runs as a child process an MCP client starts, acting as the agent in WRIT_KEY", async () => {
    const root = resolve(import.meta.dirname, "../..");
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ["--import", "tsx", resolve(root, "src/cli/bin.ts"), "mcp"],
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        WRIT_URL: server.url,
        WRIT_KEY: keyOf(t, "report-agent"),
      },
      stderr: "pipe",
    });
    const client = new Client({ name: "test-agent", version: "1.0.0" });
    await client.connect(transport);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    const asked = structured(
      await call(client, "writ_request_access", { ...S3_READ, reason: "r" }),
    );
    expect(asked.status).toBe("approved");
    await client.close();
  });
});

describe("/mcp when a wait is cut short", () => {
  /** A writ of its own, served with a log to read, and a pending request of its agent. */
  async function waitingWrit(shutdownGraceSeconds = 1) {
    const { logger, lines } = capturingLogger();
    const own = await startTestWrit({}, { logger });
    const served = await serveTestWrit(own, { shutdownGraceSeconds });
    const { id } = await createRequest(own, CUSTOMERS_EXPORT);
    const logged = (route: string) =>
      lines.filter((line) => line.message === "http" && line.fields?.route === route);
    /** Calls writ_check_request over /mcp; resolves once its long-poll is under way. */
    const wait = async (waitSeconds: number, signal?: AbortSignal) => {
      const answer = fetch(new URL("/mcp", served.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${keyOf(own, "report-agent")}`,
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: {
            name: "writ_check_request",
            arguments: { request_id: id, wait_seconds: waitSeconds },
          },
        }),
        ...(signal !== undefined ? { signal } : {}),
      });
      // The tool reads the request once, then long-polls at once.
      await waitFor("the tool's long-poll", async () => logged("/v1/requests/:id").length >= 1);
      return { answer };
    };
    const close = async () => {
      await served.stop();
      await rm(own.dataDir, { recursive: true, force: true });
    };
    return { served, logged, wait, close };
  }

  it("ends the call when the caller hangs up, rather than leaving it open for good", async () => {
    const w = await waitingWrit();
    try {
      const hangUp = new AbortController();
      const { answer } = await w.wait(1, hangUp.signal);
      hangUp.abort();
      await answer.catch(() => undefined);
      const readsAtHangUp = w.logged("/v1/requests/:id").length;
      await waitFor(
        "the /mcp call in the access log",
        async () => w.logged("/mcp").length > 0,
        5000,
      );
      expect(w.logged("/mcp")[0]?.fields?.status).toBe(499);
      // Past the end of the tool's wait: nothing went on reading the request.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(w.logged("/v1/requests/:id").length - readsAtHangUp).toBeLessThanOrEqual(1);
    } finally {
      await w.close();
    }
  });

  it("answers a waiting call with the request still pending when writ stops", async () => {
    const w = await waitingWrit(5);
    try {
      const { answer } = await w.wait(30);
      const readsAtStop = w.logged("/v1/requests/:id").length;
      const stopping = w.served.stop();
      const res = await within(answer, "the tool's answer");
      expect(res.status).toBe(200);
      const body = (await res.json()) as { result: CallToolResult };
      expect(structured(body.result)).toMatchObject({ status: "pending" });
      // One answer to the long-poll, not a loop of them against a stopping writ.
      expect(w.logged("/v1/requests/:id").length - readsAtStop).toBeLessThanOrEqual(1);
      await stopping;
    } finally {
      await w.close();
    }
  });
});
