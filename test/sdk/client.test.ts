import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CreateRequestInput,
  createWritClient,
  type WritClient,
} from "../../src/sdk/client.js";
import { WritApiError } from "../../src/sdk/errors.js";
import type { RunningServer } from "../../src/server.js";
import { serveTestWrit, startTestWrit, type TestWrit } from "../support/harness.js";

let t: TestWrit;
let server: RunningServer;
const errorsSeen: WritApiError[] = [];

function keyOf(id: string): string {
  const key = t.keys[id];
  if (key === undefined) throw new Error(`no demo key for ${id}`);
  return key;
}

function clientFor(id: string, fetchImpl?: typeof fetch): WritClient {
  return createWritClient({
    url: server.url,
    key: keyOf(id),
    ...(fetchImpl !== undefined ? { fetch: fetchImpl } : {}),
  });
}

/** Awaits a rejection, checks it is a WritApiError with `code` (and `status`), and keeps it. */
async function apiError(promise: Promise<unknown>, code: string, status?: number) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WritApiError);
  const apiError = error as WritApiError;
  expect(apiError.code).toBe(code);
  if (status !== undefined) expect(apiError.status).toBe(status);
  errorsSeen.push(apiError);
  return apiError;
}

/**
 * A fetch that tells when a long-poll (`?wait=`) has been sent, so a test acts
 * while the client is waiting rather than sleeping for a guessed time.
 */
function watchLongPolls() {
  let sent: () => void = () => {};
  const longPollSent = new Promise<void>((resolve) => {
    sent = resolve;
  });
  const watched: typeof fetch = (input, init) => {
    if (String(input).includes("wait=")) sent();
    return fetch(input, init);
  };
  return { fetch: watched, longPollSent };
}

const EXPORT: CreateRequestInput = {
  action: "db:export",
  resource: "db://prod/customers",
  audience: "billing-api",
  reason: "churn analysis",
  ticket: "DATA-1234",
  context: { rows: 12_000, customer_email: "someone@example.com" },
};

const REPORT_READ: CreateRequestInput = {
  action: "s3:GetObject",
  resource: "arn:aws:s3:::demo-reports/2024/q3.csv",
  audience: "billing-api",
};

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return address.port;
}

beforeAll(async () => {
  t = await startTestWrit();
  server = await serveTestWrit(t);
});

afterAll(async () => {
  // server.stop() closes the writ too.
  await server?.stop();
  if (t !== undefined) await rm(t.dataDir, { recursive: true, force: true });
});

describe("createWritClient", () => {
  it("refuses URLs that are not http(s), carry credentials or a query, with a TypeError", () => {
    const key = keyOf("report-agent");
    for (const url of ["ftp://127.0.0.1/", "not a url", "http://u:p@127.0.0.1/", "http://h/?a=1"]) {
      expect(() => createWritClient({ url, key })).toThrow(TypeError);
    }
  });

  it("refuses malformed keys without echoing them", () => {
    const bad = "writ_agent_secret with\nnewline";
    let thrown: unknown;
    try {
      createWritClient({ url: server.url, key: bad });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as Error).message).not.toContain("secret");
    expect(() => createWritClient({ url: server.url, key: "" })).toThrow(TypeError);
  });

  it("keeps a path prefix, sends the key only as a bearer token and never follows redirects", async () => {
    const seen: { url: string; init: RequestInit | undefined }[] = [];
    const recording: typeof fetch = async (input, init) => {
      seen.push({ url: String(input), init });
      return new Response(JSON.stringify({ items: [] }), {
        headers: { "content-type": "application/json" },
      });
    };
    const client = createWritClient({
      url: "https://writ.example.com/broker",
      key: "writ_auditor_abc",
      fetch: recording,
    });
    expect(client.url).toBe("https://writ.example.com/broker/");
    await client.events({ type: "token.used", limit: 5 });
    expect(seen[0]?.url).toBe("https://writ.example.com/broker/v1/events?type=token.used&limit=5");
    const headers = new Headers(seen[0]?.init?.headers);
    expect(headers.get("authorization")).toBe("Bearer writ_auditor_abc");
    expect(seen[0]?.init?.redirect).toBe("manual");
  });

  it("rejects bad call arguments with a TypeError", async () => {
    const agent = clientFor("report-agent");
    await expect(agent.get("req_x", { waitSeconds: 61 })).rejects.toThrow(TypeError);
    await expect(agent.get("")).rejects.toThrow(TypeError);
    await expect(agent.revoke("", "reason")).rejects.toThrow(TypeError);
    await expect(agent.waitForDecision("req_x", { timeoutMs: -1 })).rejects.toThrow(TypeError);
    // Path segments that URL resolution would drop, sending the call elsewhere
    // (".." collects at /v1/credential): refused before anything is sent.
    for (const id of [".", ".."]) {
      await expect(agent.get(id)).rejects.toThrow(TypeError);
      await expect(agent.collectCredential(id)).rejects.toThrow(TypeError);
      await expect(agent.revoke(id, "reason")).rejects.toThrow(TypeError);
    }
  });

  it("rejects input that cannot be sent as JSON with a TypeError, not as unreachable, sending nothing", async () => {
    let sent = 0;
    const counting: typeof fetch = (input, init) => {
      sent += 1;
      return fetch(input, init);
    };
    const agent = clientFor("report-agent", counting);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    // A BigInt, as database drivers return for large integer columns.
    const inputs = [{ rows: 12_000n }, circular, { nested: deep }];
    for (const context of inputs) {
      const input = { ...EXPORT, context } as unknown as CreateRequestInput;
      const error = await agent.request(input).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/JSON/);
    }
    expect(sent).toBe(0);
  });
});

describe("the v1 API through the client", () => {
  it("request → list → approve ×2 → get → collect once → consume once → events", async () => {
    const agent = clientFor("report-agent");
    const bob = clientFor("bob");
    const carol = clientFor("carol");

    const created = await agent.request(EXPORT);
    expect(created).toMatchObject({ status: "pending", agent: "report-agent", owner: "alice" });
    expect(created.decision).toMatchObject({ effect: "approve", approvers: ["data-owners"] });
    expect(created.pending_approvals).toBe(2);
    // The agent sees its own context; reviewers see sensitive fields masked.
    expect(created.context.customer_email).toBe("someone@example.com");

    const pending = await bob.list({ status: "pending" });
    const listed = pending.items.find((r) => r.id === created.id);
    expect(listed?.masked_fields).toEqual(["customer_email"]);
    expect(listed?.context.customer_email).not.toBe("someone@example.com");

    await apiError(agent.collectCredential(created.id), "approval_pending", 409);

    const afterBob = await bob.approve(created.id, "looks fine");
    expect(afterBob).toMatchObject({ status: "pending", pending_approvals: 1 });
    expect(afterBob.reviews[0]).toMatchObject({ reviewer: "bob", comment: "looks fine" });
    const afterCarol = await carol.approve(created.id);
    expect(afterCarol.status).toBe("approved");
    expect((await agent.get(created.id)).status).toBe("approved");

    const credential = await agent.collectCredential(created.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    expect(credential.token.split(".")).toHaveLength(3);
    await apiError(agent.collectCredential(created.id), "credential_already_issued", 410);

    const resourceServer = clientFor("billing-api");
    const grant = await resourceServer.consume(credential.token);
    expect(grant).toMatchObject({
      active: true,
      sub: "report-agent",
      action: "db:export",
      resource: "db://prod/customers",
      request_id: created.id,
    });
    await apiError(resourceServer.consume(credential.token), "token_replayed", 409);

    const auditor = clientFor("dana");
    const page = await auditor.events({ request_id: created.id });
    expect(page.items.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        "request.created",
        "approval.granted",
        "request.approved",
        "credential.issued",
        "token.used",
        "token.replay_blocked",
      ]),
    );
    const first = await auditor.events({ request_id: created.id, limit: 1 });
    expect(first.items).toHaveLength(1);
    expect(first.next).toBeDefined();
  });

  it("pages through requests with limit and cursor", async () => {
    const agent = clientFor("report-agent");
    await agent.request(EXPORT);
    await agent.request(EXPORT);
    const auditor = clientFor("dana");
    const first = await auditor.list({ agent: "report-agent", limit: 1 });
    expect(first.items).toHaveLength(1);
    expect(first.next).toBeDefined();
    const second = await auditor.list({
      agent: "report-agent",
      limit: 1,
      cursor: first.next ?? "",
    });
    expect(second.items).toHaveLength(1);
    expect(second.items[0]?.id).not.toBe(first.items[0]?.id);
  });

  it("denies with a reason, and cancels", async () => {
    const agent = clientFor("report-agent");
    const toDeny = await agent.request(EXPORT);
    const denied = await clientFor("carol").deny(toDeny.id, "not this quarter");
    expect(denied.status).toBe("denied");
    expect(denied.reviews[0]).toMatchObject({ verdict: "deny", comment: "not this quarter" });
    await apiError(agent.collectCredential(toDeny.id), "request_denied", 403);

    const toCancel = await agent.request(EXPORT);
    expect((await agent.cancel(toCancel.id)).status).toBe("cancelled");
    await apiError(agent.collectCredential(toCancel.id), "request_cancelled", 410);
    await apiError(agent.cancel(toCancel.id), "request_not_pending", 409);
  });

  it("revokes an issued credential and an uncollected approval, with the API's errors", async () => {
    const agent = clientFor("report-agent");
    const carol = clientFor("carol");

    const issued = await agent.request(REPORT_READ);
    const credential = await agent.collectCredential(issued.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    const revoked = await carol.revoke(issued.id, "key found in a public paste");
    expect(revoked).toMatchObject({ id: issued.id, status: "revoked" });
    await apiError(clientFor("billing-api").consume(credential.token), "token_invalid", 401);

    const approved = await agent.request(REPORT_READ);
    expect((await clientFor("dana").revoke(approved.id, "agent under review")).status).toBe(
      "revoked",
    );
    await apiError(agent.collectCredential(approved.id), "request_revoked", 410);

    const again = await apiError(carol.revoke(approved.id, "twice"), "not_revocable", 409);
    expect(again.details).toMatchObject({ status: "revoked" });
    const pending = await agent.request(EXPORT);
    const notYet = await apiError(carol.revoke(pending.id, "early"), "not_revocable", 409);
    expect(notYet.details).toMatchObject({ status: "pending" });
    await apiError(agent.revoke(pending.id, "mine"), "wrong_principal_kind", 403);
    await apiError(clientFor("billing-api").revoke(pending.id, "x"), "wrong_principal_kind", 403);
    await apiError(carol.revoke("req_AAAAAAAAAAAAAAAAAAAAAA", "gone"), "not_found", 404);
    for (const reason of ["", "   ", "\u200B", "x".repeat(2001)]) {
      await apiError(carol.revoke(pending.id, reason), "validation_failed", 400);
    }
    expect((await agent.get(pending.id)).status).toBe("pending");
  });

  it("maps the API's error answers to WritApiError with code, status and details", async () => {
    const agent = clientFor("report-agent");
    const denied = await apiError(
      agent.request({
        action: "iam:AttachRolePolicy",
        resource: "arn:aws:iam::1:role/app",
        audience: "x",
      }),
      "policy_denied",
      403,
    );
    expect(denied.details).toMatchObject({ policies: ["no-iam-attach-role-policy"] });
    expect(denied.details?.request_id).toMatch(/^req_/);

    const { reason: _reason, ...noReason } = EXPORT;
    await apiError(agent.request(noReason), "reason_required", 422);
    const { audience: _audience, ...noAudience } = REPORT_READ;
    await apiError(agent.request(noAudience), "audience_required", 422);
    await apiError(agent.request({ ...EXPORT, action: "not an action" }), "validation_failed", 400);
    await apiError(agent.get("req_AAAAAAAAAAAAAAAAAAAAAA"), "not_found", 404);
    await apiError(agent.list(), "wrong_principal_kind", 403);
    await apiError(clientFor("bob").request(EXPORT), "wrong_principal_kind", 403);

    const pending = await agent.request(EXPORT);
    await apiError(clientFor("alice").approve(pending.id), "self_approval_forbidden", 403);
    await apiError(clientFor("dana").approve(pending.id), "wrong_principal_kind", 403);
    await clientFor("bob").approve(pending.id);
    await apiError(clientFor("bob").approve(pending.id), "already_reviewed", 409);

    const stranger = createWritClient({ url: server.url, key: "writ_agent_not-a-real-key" });
    await apiError(stranger.get(pending.id), "unauthenticated", 401);
  });
});

describe("long-polls", () => {
  it("get with waitSeconds answers when the status changes", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    await clientFor("bob").approve(created.id);
    const watch = watchLongPolls();
    const waiting = clientFor("report-agent", watch.fetch).get(created.id, { waitSeconds: 30 });
    await watch.longPollSent;
    await clientFor("carol").approve(created.id);
    expect((await waiting).status).toBe("approved");
  });

  it("waitForDecision resolves once approved, reporting each poll", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    const watch = watchLongPolls();
    const polls: string[] = [];
    const decided = clientFor("report-agent", watch.fetch).waitForDecision(created.id, {
      timeoutMs: 20_000,
      onPoll: (r) => polls.push(`${r.status}:${r.pending_approvals}`),
    });
    await watch.longPollSent;
    await clientFor("bob").approve(created.id);
    await clientFor("carol").approve(created.id);
    const request = await decided;
    expect(request.status).toBe("approved");
    expect(polls[0]).toBe("pending:2");
    expect(polls.at(-1)).toBe("approved:0");
  });

  it("waitForDecision resolves at once for a request already decided", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(REPORT_READ);
    expect(created.status).toBe("approved");
    const started = Date.now();
    expect((await agent.waitForDecision(created.id, { timeoutMs: 20_000 })).status).toBe(
      "approved",
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("waitForDecision resolves with a deny", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    const watch = watchLongPolls();
    const decided = clientFor("report-agent", watch.fetch).waitForDecision(created.id, {
      timeoutMs: 20_000,
    });
    await watch.longPollSent;
    await clientFor("bob").deny(created.id, "no");
    expect((await decided).status).toBe("denied");
  });

  it("waitForDecision gives up with wait_timeout after timeoutMs", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    const started = Date.now();
    const error = await apiError(
      agent.waitForDecision(created.id, { timeoutMs: 300 }),
      "wait_timeout",
      0,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error.details).toMatchObject({ request_id: created.id, status: "pending" });
  });

  it("waitForDecision pauses when the key holds all its long-polls (too_many_waits), then polls again", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    let refused = 0;
    let sent: () => void = () => {};
    const retried = new Promise<void>((resolve) => {
      sent = resolve;
    });
    // The first long-poll is refused as a server refuses one over the cap.
    const refusing: typeof fetch = (input, init) => {
      if (String(input).includes("wait=")) {
        if (refused === 0) {
          refused++;
          const body = {
            error: {
              code: "too_many_waits",
              message: "At most 100 long-polls may wait at once for one caller.",
              details: { max_waits: 100, retry_after_seconds: 1 },
            },
          };
          return Promise.resolve(
            new Response(JSON.stringify(body), {
              status: 429,
              headers: { "content-type": "application/json", "retry-after": "1" },
            }),
          );
        }
        sent();
      }
      return fetch(input, init);
    };
    const decided = clientFor("report-agent", refusing).waitForDecision(created.id, {
      timeoutMs: 20_000,
    });
    await retried;
    await clientFor("bob").approve(created.id);
    await clientFor("carol").approve(created.id);
    expect((await decided).status).toBe("approved");
    expect(refused).toBe(1);
  });

  it("waitForDecision rides out a bad gateway, an unreachable replica and store_unavailable, then resolves", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    // The first polls meet what a load balancer and a restarting replica answer.
    const blips: (() => Promise<Response>)[] = [
      async () => new Response("<html>Bad gateway</html>", { status: 502 }),
      async () => {
        throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      },
      async () =>
        new Response(
          JSON.stringify({ error: { code: "store_unavailable", message: "Redis is down." } }),
          { status: 503, headers: { "content-type": "application/json" } },
        ),
      async () => new Response("upstream timed out", { status: 504 }),
    ];
    let polls = 0;
    let passed: () => void = () => {};
    const through = new Promise<void>((resolve) => {
      passed = resolve;
    });
    const flaky: typeof fetch = (input, init) => {
      polls++;
      const blip = blips.shift();
      if (blip !== undefined) return blip();
      if (String(input).includes("wait=")) passed();
      return fetch(input, init);
    };
    const decided = clientFor("report-agent", flaky).waitForDecision(created.id, {
      timeoutMs: 30_000,
    });
    // Without retries the wait rejects on the first blip, before any long-poll passes.
    await Promise.race([through, decided]);
    await clientFor("bob").approve(created.id);
    await clientFor("carol").approve(created.id);
    expect((await decided).status).toBe("approved");
    expect(polls).toBeGreaterThan(4);
  });

  it("waitForDecision ends at once on a permanent error, and at its deadline on lasting failures", async () => {
    let calls = 0;
    const counted: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    await apiError(
      clientFor("report-agent", counted).waitForDecision("req_AAAAAAAAAAAAAAAAAAAAAA", {
        timeoutMs: 20_000,
      }),
      "not_found",
      404,
    );
    expect(calls).toBe(1);

    const unavailable: typeof fetch = async () =>
      new Response(JSON.stringify({ error: { code: "store_unavailable", message: "down" } }), {
        status: 503,
        headers: { "content-type": "application/json" },
      });
    const started = Date.now();
    await apiError(
      clientFor("report-agent", unavailable).waitForDecision("req_AAAAAAAAAAAAAAAAAAAAAA", {
        timeoutMs: 1_500,
      }),
      "store_unavailable",
      503,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeLessThan(5_000);

    // The caller's signal ends the retries too.
    const controller = new AbortController();
    const aborted = clientFor("report-agent", async (input, init) => {
      queueMicrotask(() => controller.abort());
      return unavailable(input, init);
    }).waitForDecision("req_AAAAAAAAAAAAAAAAAAAAAA", {
      timeoutMs: 20_000,
      signal: controller.signal,
    });
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
  });

  it("waitForDecision stops when its signal aborts, rejecting with the signal's reason", async () => {
    const agent = clientFor("report-agent");
    const created = await agent.request(EXPORT);
    const watch = watchLongPolls();
    const controller = new AbortController();
    const started = Date.now();
    const waiting = clientFor("report-agent", watch.fetch).waitForDecision(created.id, {
      timeoutMs: 60_000,
      signal: controller.signal,
    });
    await watch.longPollSent;
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
    expect(Date.now() - started).toBeLessThan(5_000);
    // Already aborted: rejects before any call.
    await expect(
      agent.waitForDecision(created.id, { timeoutMs: 1000, signal: controller.signal }),
    ).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("failures without a writ answer", () => {
  it("an unreachable server is code unreachable, status 0, naming the URL", async () => {
    const port = await closedPort();
    const key = keyOf("report-agent");
    const client = createWritClient({ url: `http://127.0.0.1:${port}`, key });
    const error = await apiError(client.request(EXPORT), "unreachable", 0);
    expect(error.message).toContain(`http://127.0.0.1:${port}/`);
  });

  it("a non-JSON answer, a JSON answer without writ's error shape, or a redirect is bad_response", async () => {
    const answer =
      (body: string, status: number, headers: Record<string, string> = {}): typeof fetch =>
      async () =>
        new Response(body, { status, headers });
    const make = (f: typeof fetch) =>
      createWritClient({ url: "http://127.0.0.1:9", key: keyOf("report-agent"), fetch: f });
    await apiError(
      make(answer("<html>Bad gateway</html>", 502, { "content-type": "text/html" })).get("req_x"),
      "bad_response",
      502,
    );
    await apiError(make(answer("not json", 200)).get("req_x"), "bad_response", 200);
    await apiError(make(answer(`{"oops":true}`, 500)).get("req_x"), "bad_response", 500);
    const redirect = await apiError(
      make(answer("", 302, { location: "http://elsewhere/" })).get("req_x"),
      "bad_response",
      302,
    );
    expect(redirect.message).toMatch(/redirect/);
  });

  it("never puts a key in an error message or details, even when a server echoes it", async () => {
    const key = keyOf("report-agent");
    const echo: typeof fetch = async () =>
      new Response(
        JSON.stringify({ error: { code: "unauthenticated", message: `bad key ${key}` } }),
        { status: 401, headers: { "content-type": "application/json" } },
      );
    const echoed = await apiError(
      createWritClient({ url: server.url, key, fetch: echo }).get("req_x"),
      "unauthenticated",
      401,
    );
    expect(echoed.message).toBe("bad key [redacted]");

    expect(errorsSeen.length).toBeGreaterThan(15);
    const keys = Object.values(t.keys);
    for (const error of errorsSeen) {
      const text = `${error.message} ${JSON.stringify(error.details ?? {})} ${String(error.stack)}`;
      for (const k of keys) expect(text).not.toContain(k);
    }
  });
});
