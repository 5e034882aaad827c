import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { cp, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DevIdentities } from "../../src/config/dev-identities.js";
import { createWritClient } from "../../src/sdk/client.js";
import { BIN, ROOT, type Running, type RunResult, startWritCli } from "../support/cli.js";

// These tests run the built CLI (`npm test` builds first) against a `writ dev`
// subprocess, as a user would.

const POLICIES = join(ROOT, "policies");
const RUN_TIMEOUT_MS = 15_000;

interface RunOptions {
  /** WRIT_KEY for the command; omitted means unset. */
  key?: string;
  /** WRIT_URL; the dev server's by default. */
  url?: string;
}

let devServer: ChildProcessWithoutNullStreams | undefined;
let dataDir = "";
let url = "";
let ids: DevIdentities;

function childEnv(options: RunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete env.WRIT_KEY;
  delete env.WRIT_URL;
  env.WRIT_URL = options.url ?? url;
  if (options.key !== undefined) env.WRIT_KEY = options.key;
  return env;
}

function start(args: readonly string[], options: RunOptions = {}): Running {
  return startWritCli(args, childEnv(options), RUN_TIMEOUT_MS);
}

function writ(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return start(args, options).done;
}

/** Resolves with the first match of `pattern` in what `stream` writes; bounded by `timeoutMs`. */
function waitForOutput(stream: Readable, pattern: RegExp, timeoutMs = 10_000) {
  return new Promise<RegExpMatchArray>((resolvePromise, reject) => {
    let seen = "";
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      const match = seen.match(pattern);
      if (match !== null) finish(() => resolvePromise(match));
    };
    const onEnd = () => finish(() => reject(new Error(`stream ended before ${pattern}: ${seen}`)));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${seen}`))),
      timeoutMs,
    );
    function finish(settle: () => void) {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      settle();
    }
    stream.on("data", onData);
    stream.on("end", onEnd);
  });
}

function keyOf(id: string): string {
  const all = [...ids.agents, ...ids.reviewers, ...ids.auditors, ...ids.resource_servers];
  const key = all.find((p) => p.id === id)?.key;
  if (key === undefined) throw new Error(`no demo key for ${id}`);
  return key;
}

const agent = () => ({ key: keyOf("report-agent") });
const reviewer = (id: "alice" | "bob" | "carol") => ({ key: keyOf(id) });

const EXPORT_ARGS = [
  "--action",
  "db:export",
  "--resource",
  "db://prod/customers",
  "--audience",
  "billing-api",
  "--reason",
  "churn analysis",
];

/** An S3 read the demo policies allow at once: approved, ready to collect. */
const READ_ARGS = [
  "--action",
  "s3:GetObject",
  "--resource",
  "arn:aws:s3:::demo-reports/2024/q3.csv",
  "--audience",
  "billing-api",
];

async function newPendingRequest(): Promise<string> {
  const result = await writ(["request", ...EXPORT_ARGS, "--json"], agent());
  expect(result.code, result.stderr).toBe(0);
  const request = JSON.parse(result.stdout) as { id: string; status: string };
  expect(request.status).toBe("pending");
  return request.id;
}

/**
 * Serves a token file as a platform rotating it would: the n-th time the file
 * is read it holds `contents(n)`. It is a FIFO, so each read is seen and
 * answered in turn, without guessing when the reader comes.
 */
async function servedTokenFile(contents: (read: number) => string) {
  const dir = await mkdtemp(join(tmpdir(), "writ-token-"));
  const path = join(dir, "token");
  execFileSync("mkfifo", [path]);
  let stopped = false;
  let reads = 0;
  const serving = (async () => {
    while (!stopped) {
      // Opening for writing waits for the next reader.
      const handle = await open(path, "w");
      if (stopped) {
        await handle.close();
        break;
      }
      reads += 1;
      await handle.writeFile(contents(reads));
      await handle.close();
      // The next answer waits until this reader has closed the file: written
      // while it still reads, it would run into this one.
      for (;;) {
        try {
          const probe = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
          await probe.close();
          await new Promise((resolvePause) => setTimeout(resolvePause, 5));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENXIO") break;
          throw error;
        }
      }
    }
  })();
  return {
    path,
    reads: () => reads,
    async stop() {
      stopped = true;
      // A reader of our own releases the writer still waiting for one.
      const reader = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
      await serving;
      await reader.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function consume(token: string) {
  const resourceServer = createWritClient({ url, key: keyOf("billing-api") });
  return resourceServer.consume(token);
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolvePromise) => probe.listen(0, "127.0.0.1", resolvePromise));
  const address = probe.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolvePromise) => probe.close(() => resolvePromise()));
  return address.port;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-cli-"));
  devServer = spawn(
    process.execPath,
    [BIN, "dev", "--port", "0", "--data-dir", dataDir, "--policies", POLICIES, "--quiet"],
    { cwd: ROOT, env: childEnv({ url: "" }) },
  );
  // Keep both pipes drained for the server's whole life (notifications go to stdout).
  devServer.stderr.resume();
  const listening = waitForOutput(devServer.stdout, /listening on (http:\/\/\S+)/, 15_000);
  devServer.stdout.resume();
  const match = await listening;
  url = match[1] ?? "";
  ids = JSON.parse(await readFile(join(dataDir, "dev-identities.json"), "utf8")) as DevIdentities;
});

afterAll(async () => {
  const server = devServer;
  if (server !== undefined && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise<void>((resolvePromise) =>
      server.once("exit", () => resolvePromise()),
    );
    server.kill("SIGTERM");
    const force = setTimeout(() => server.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(force);
  }
  if (dataDir !== "") await rm(dataDir, { recursive: true, force: true });
});

describe("the command line itself", () => {
  it("prints help for every command, exit 0", async () => {
    const commands = [
      ["request"],
      ["status"],
      ["credential"],
      ["cancel"],
      ["pending"],
      ["approve"],
      ["deny"],
      ["revoke"],
      ["dev"],
      ["policy", "test"],
      ["keygen"],
    ];
    const results = await Promise.all(commands.map((c) => writ([...c, "--help"])));
    results.forEach((result, i) => {
      const command = commands[i]?.join(" ") ?? "";
      expect(result.code, command).toBe(0);
      expect(result.stdout, command).toContain(`Usage: writ ${command}`);
    });
    const overview = await writ(["--help"]);
    expect(overview.code).toBe(0);
    for (const command of [
      "request",
      "status",
      "credential",
      "cancel",
      "pending",
      "approve",
      "deny",
      "revoke",
    ]) {
      expect(overview.stdout).toContain(`writ ${command}`);
    }
  });

  it("exits 2 on usage errors, before talking to the server", async () => {
    const id = "req_AAAAAAAAAAAAAAAAAAAAAA";
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command/],
      [["pending", "--bogus"], /Unknown option '--bogus'/],
      [["request", "--resource", "x"], /--action is required/],
      [["request", ...EXPORT_ARGS, "--context", "{not json"], /--context is not valid JSON/],
      [["request", ...EXPORT_ARGS, "--timeout", "5"], /--timeout only applies with --wait/],
      [["status", "not-an-id"], /is not a request id/],
      [["status", id, "--wait", "600"], /--wait takes a whole number/],
      [["approve"], /give the request id/],
      [["deny", id], /--reason is required/],
      [["revoke", "--reason", "leaked"], /give the request id/],
      [["revoke", "not-an-id", "--reason", "leaked"], /"not-an-id" is not a request id/],
      [["revoke", `${id}x`, "--reason", "leaked"], /is not a request id/],
      [["revoke", id, id, "--reason", "leaked"], /unexpected argument/],
      [["revoke", id], /--reason is required/],
      [["revoke", id, "--reason", "  "], /--reason is required/],
      [["revoke", id, "--reason"], /argument missing/],
      [["revoke", id, "--reason", "leaked", "--force"], /Unknown option '--force'/],
      [["keygen"], /--kind must be one of/],
    ];
    // A key is set and the URL is dead: a usage error must not get as far as a call.
    const port = await closedPort();
    const results = await Promise.all(
      cases.map(([args]) => writ(args, { key: keyOf("bob"), url: `http://127.0.0.1:${port}` })),
    );
    results.forEach((result, i) => {
      const [args, message] = cases[i] ?? [[], /./];
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(message);
    });
  });

  it("exits 2 naming WRIT_KEY when no key is set", async () => {
    const result = await writ(["pending"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/set WRIT_KEY/);
  });

  it("exits 1 with code unreachable when the server cannot be reached", async () => {
    const port = await closedPort();
    const key = keyOf("bob");
    const result = await writ(["pending"], { key, url: `http://127.0.0.1:${port}` });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^writ pending: unreachable: .*http://127\\.0\\.0\\.1:${port}/`),
    );
    expect(result.stderr).not.toContain(key);
  });
});

describe("requests through the CLI", () => {
  it("request → pending → self-approval refused → bob and carol approve → credential → consume", async () => {
    const created = await writ(["request", ...EXPORT_ARGS], agent());
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.match(/^(req_\S+)\s+pending/)?.[1] ?? "";
    expect(id).not.toBe("");
    expect(created.stdout).toContain("2 from data-owners");
    expect(created.stdout).toContain(`writ approve ${id}`);

    const [pendingText, pendingJson] = await Promise.all([
      writ(["pending"], reviewer("bob")),
      writ(["pending", "--json"], reviewer("bob")),
    ]);
    expect(pendingText.code).toBe(0);
    expect(pendingText.stdout).toMatch(
      new RegExp(
        `${id}  db:export  db://prod/customers\\n.*report-agent \\(owner alice\\).*0 of 2`,
      ),
    );
    expect(pendingText.stdout).toContain("reason: churn analysis");
    const listed = JSON.parse(pendingJson.stdout) as { items: { id: string }[] };
    expect(listed.items.map((r) => r.id)).toContain(id);

    const byAlice = await writ(["approve", id], reviewer("alice"));
    expect(byAlice.code).toBe(1);
    expect(byAlice.stderr).toMatch(/^writ approve: self_approval_forbidden: /);

    const byBob = await writ(["approve", id, "--comment", "fine by me"], reviewer("bob"));
    expect(byBob.code, byBob.stderr).toBe(0);
    expect(byBob.stdout).toContain("1 of 2 approvals, 1 more needed");
    const byCarol = await writ(["approve", id], reviewer("carol"));
    expect(byCarol.code, byCarol.stderr).toBe(0);
    expect(byCarol.stdout).toContain("now approved");

    const status = await writ(["status", id, "--json"], agent());
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ id, status: "approved" });

    const collected = await writ(["credential", id], agent());
    expect(collected.code, collected.stderr).toBe(0);
    const token = collected.stdout.trim();
    expect(collected.stdout).toBe(`${token}\n`);
    expect(token.split(".")).toHaveLength(3);
    expect(collected.stderr).toContain("single use");
    expect(await consume(token)).toMatchObject({ request_id: id, action: "db:export" });

    const again = await writ(["credential", id], agent());
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^writ credential: credential_already_issued: /);
  });

  it("request --wait prints the token alone on stdout once reviewers approve", async () => {
    const waiting = start(["request", ...EXPORT_ARGS, "--wait", "--timeout", "12"], agent());
    const [, id = ""] = await waitForOutput(waiting.child.stderr, /^(req_\S+)\s+pending/m);
    const byBob = await writ(["approve", id], reviewer("bob"));
    expect(byBob.code, byBob.stderr).toBe(0);
    const byCarol = await writ(["approve", id], reviewer("carol"));
    expect(byCarol.code, byCarol.stderr).toBe(0);

    const result = await waiting.done;
    expect(result.code, result.stderr).toBe(0);
    const token = result.stdout.trim();
    expect(result.stdout).toBe(`${token}\n`);
    expect(result.stderr).toContain(`${id} approved by bob, carol`);
    // Not a terminal: no live indicator, no control characters.
    expect(result.stderr).not.toContain("\r");
    expect(result.stderr).not.toContain("\u001b");
    expect(await consume(token)).toMatchObject({ request_id: id, sub: "report-agent" });
  });

  it("request --wait --json on a request allowed at once prints { request, credential }", async () => {
    const result = await writ(
      [
        "request",
        "--action",
        "s3:GetObject",
        "--resource",
        "arn:aws:s3:::demo-reports/2024/q3.csv",
        "--audience",
        "billing-api",
        "--context",
        '{"purpose":"weekly summary"}',
        "--ttl",
        "60",
        "--wait",
        "--json",
      ],
      agent(),
    );
    expect(result.code, result.stderr).toBe(0);
    const { request, credential } = JSON.parse(result.stdout) as {
      request: { status: string; ttl_seconds: number; context: unknown };
      credential: { type: string; token: string };
    };
    expect(request).toMatchObject({
      status: "approved",
      ttl_seconds: 60,
      context: { purpose: "weekly summary" },
    });
    expect(credential.type).toBe("jwt");
    expect(await consume(credential.token)).toMatchObject({ action: "s3:GetObject" });
  });

  it("deny with a reason ends the request: a waiting agent exits 3", async () => {
    const waiting = start(["request", ...EXPORT_ARGS, "--wait", "--timeout", "12"], agent());
    const [, id = ""] = await waitForOutput(waiting.child.stderr, /^(req_\S+)\s+pending/m);
    const denied = await writ(["deny", id, "--reason", "not this quarter"], reviewer("carol"));
    expect(denied.code, denied.stderr).toBe(0);
    expect(denied.stdout).toContain(`denied ${id}`);

    const result = await waiting.done;
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(`${id} was denied by carol: not this quarter`);

    const [status, credential] = await Promise.all([
      writ(["status", id, "--json"], agent()),
      writ(["credential", id], agent()),
    ]);
    expect(status.code).toBe(3);
    expect(JSON.parse(status.stdout)).toMatchObject({
      id,
      status: "denied",
      reviews: [{ reviewer: "carol", verdict: "deny", comment: "not this quarter" }],
    });
    expect(credential.code).toBe(3);
    expect(credential.stderr).toMatch(/^writ credential: request_denied: /);
  });

  it("request --wait stopped by a signal or its timeout leaves the request open and says how to go on", async () => {
    const stillOpen = (id: string) =>
      `It stays open: check it with \`writ status ${id}\`, collect it once approved with \`writ credential ${id}\`, or withdraw it with \`writ cancel ${id}\`.\n`;
    for (const [signal, code] of [
      ["SIGINT", 130],
      ["SIGTERM", 143],
    ] as const) {
      const waiting = start(["request", ...EXPORT_ARGS, "--wait", "--timeout", "30"], agent());
      const [, id = ""] = await waitForOutput(
        waiting.child.stderr,
        /^(req_\S+)\s+pending[\s\S]*^Waiting up to /m,
      );
      waiting.child.kill(signal);
      const result = await waiting.done;
      expect(result.code, signal).toBe(code);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain(
        `writ request: ${signal} received while waiting for ${id}.\n`,
      );
      expect(result.stderr.endsWith(stillOpen(id)), result.stderr).toBe(true);
      const status = await writ(["status", id, "--json"], agent());
      expect(JSON.parse(status.stdout)).toMatchObject({ id, status: "pending" });
      expect((await writ(["cancel", id], agent())).code).toBe(0);
    }

    const timedOut = await writ(["request", ...EXPORT_ARGS, "--wait", "--timeout", "1"], agent());
    const [, id = ""] = /^(req_\S+)\s+pending/m.exec(timedOut.stderr) ?? [];
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toContain("writ request: wait_timeout: ");
    expect(timedOut.stderr.endsWith(stillOpen(id)), timedOut.stderr).toBe(true);
    expect((await writ(["cancel", id], agent())).code).toBe(0);
  });

  it("request --wait rides out a token file that is briefly empty, and stops soon on one that stays so", async () => {
    const key = keyOf("report-agent");
    const withTokenFile = (path: string): NodeJS.ProcessEnv => ({
      ...childEnv({}),
      WRIT_TOKEN_FILE: path,
    });

    // The platform rewrites the file just as the wait starts: the first poll
    // finds it empty, the next read finds the new token.
    const rotating = await servedTokenFile((read) => (read === 2 ? "" : key));
    try {
      const waiting = startWritCli(
        ["request", ...EXPORT_ARGS, "--wait", "--timeout", "20"],
        withTokenFile(rotating.path),
        RUN_TIMEOUT_MS,
      );
      const [, id = ""] = await waitForOutput(waiting.child.stderr, /^(req_\S+)\s+pending/m);
      // Approvals go in only once the empty read has been retried and a poll is waiting.
      while (rotating.reads() < 4 && waiting.child.exitCode === null) {
        await new Promise((resolvePause) => setTimeout(resolvePause, 20));
      }
      expect((await writ(["approve", id], reviewer("bob"))).code).toBe(0);
      expect((await writ(["approve", id], reviewer("carol"))).code).toBe(0);
      const result = await waiting.done;
      expect(result.stderr).not.toContain("token_unavailable");
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().split(".")).toHaveLength(3);
    } finally {
      await rotating.stop();
    }

    // A file that stays empty ends the wait within a second or so, naming it.
    const emptied = await servedTokenFile((read) => (read === 1 ? key : ""));
    try {
      const startedAt = Date.now();
      const result = await startWritCli(
        ["request", ...EXPORT_ARGS, "--wait", "--timeout", "20"],
        withTokenFile(emptied.path),
        RUN_TIMEOUT_MS,
      ).done;
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `writ request: token_unavailable: The token provider failed to supply a token. WRIT_TOKEN_FILE ${emptied.path} is empty.\n`,
      );
      // The first read and three from the wait: two retries, no more.
      expect(emptied.reads()).toBe(4);
      const [, id = ""] = /^(req_\S+)\s+pending/m.exec(result.stderr) ?? [];
      expect((await writ(["cancel", id], agent())).code).toBe(0);
    } finally {
      await emptied.stop();
    }
  });

  it("revoke ends an issued credential and stops an approved request; others are not_revocable", async () => {
    const read = async () => {
      const result = await writ(["request", ...READ_ARGS, "--json"], agent());
      expect(result.code, result.stderr).toBe(0);
      const request = JSON.parse(result.stdout) as { id: string; status: string };
      expect(request.status).toBe("approved");
      return request.id;
    };

    // Only people revoke: an agent or a resource server key is refused by the server.
    const approved = await read();
    for (const key of [keyOf("report-agent"), keyOf("billing-api")]) {
      const refused = await writ(["revoke", approved, "--reason", "mine"], { key });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^writ revoke: wrong_principal_kind: /);
    }
    // A reason the server refuses (invisible, too long) changes nothing.
    for (const reason of ["\u200B", "x".repeat(2001)]) {
      const refused = await writ(["revoke", approved, "--reason", reason], reviewer("bob"));
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^writ revoke: validation_failed: /);
    }

    // An auditor stops the approved request before it is collected.
    const stopped = await writ(["revoke", approved, "--reason", "agent under review"], {
      key: keyOf("dana"),
    });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toBe(
      `revoked ${approved}: nothing was collected, and nothing will be minted\n`,
    );
    const collect = await writ(["credential", approved], agent());
    // Refused for good, as a denied or cancelled request is: exit 3.
    expect(collect.code).toBe(3);
    expect(collect.stdout).toBe("");
    expect(collect.stderr).toMatch(/^writ credential: request_revoked: /);
    const status = await writ(["status", approved], agent());
    expect(status.code).toBe(3);
    expect(status.stdout).toContain("revoked");

    // A reviewer ends an issued credential: its token no longer consumes.
    const issued = await read();
    const collected = await writ(["credential", issued], agent());
    expect(collected.code, collected.stderr).toBe(0);
    const token = collected.stdout.trim();
    const ended = await writ(
      ["revoke", issued, "--reason", "token pasted in a ticket", "--json"],
      reviewer("carol"),
    );
    expect(ended.code, ended.stderr).toBe(0);
    const body = JSON.parse(ended.stdout) as { id: string; status: string; credential?: unknown };
    expect(body).toMatchObject({ id: issued, status: "revoked" });
    expect(body.credential).toMatchObject({ type: "jwt" });
    const text = await writ(["status", issued], reviewer("carol"));
    expect(text.stdout).toContain("revoked");
    await expect(consume(token)).rejects.toMatchObject({ code: "token_invalid", status: 401 });

    // 409 not_revocable, naming the status: already revoked, or still pending.
    const again = await writ(["revoke", issued, "--reason", "again"], reviewer("carol"));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^writ revoke: not_revocable: .*revoked/);
    const pending = await newPendingRequest();
    const early = await writ(["revoke", pending, "--reason", "early"], reviewer("bob"));
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/^writ revoke: not_revocable: .*pending/);
    const unknown = await writ(
      ["revoke", "req_AAAAAAAAAAAAAAAAAAAAAA", "--reason", "gone"],
      reviewer("bob"),
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^writ revoke: not_found: /);
  });

  it("cancel withdraws a pending request", async () => {
    const id = await newPendingRequest();
    const cancelled = await writ(["cancel", id], agent());
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(`${id} cancelled\n`);
    const status = await writ(["status", id], agent());
    expect(status.code).toBe(3);
  });

  it("a request the policy denies exits 3 with policy_denied", async () => {
    const result = await writ(
      [
        "request",
        "--action",
        "iam:AttachRolePolicy",
        "--resource",
        "arn:aws:iam::1:role/app",
        "--audience",
        "x",
      ],
      agent(),
    );
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^writ request: policy_denied: .*no-iam-attach-role-policy/);
  });
});

describe("local commands", () => {
  it("policy test passes on the shipped cases and fails on a wrong expectation", async () => {
    const passing = await writ(["policy", "test", "--policies", POLICIES]);
    expect(passing.code, passing.stdout + passing.stderr).toBe(0);
    expect(passing.stdout).toMatch(/\d+ passed, 0 failed/);

    const copy = await mkdtemp(join(tmpdir(), "writ-policies-"));
    try {
      await cp(POLICIES, copy, { recursive: true });
      const casesFile = join(copy, "tests", "demo.json");
      const cases = JSON.parse(await readFile(casesFile, "utf8")) as {
        cases: { name: string; expect: string }[];
      };
      const first = cases.cases[0];
      if (first === undefined) throw new Error("the shipped case file has no cases");
      first.expect = first.expect === "deny" ? "allow" : "deny";
      await writeFile(casesFile, JSON.stringify(cases));
      const failing = await writ(["policy", "test", "--policies", copy]);
      expect(failing.code).toBe(1);
      expect(failing.stdout).toContain(`demo.json › ${first.name}`);
      expect(failing.stdout).toMatch(/1 failed/);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("keygen prints a key and its SHA-256", async () => {
    const result = await writ(["keygen", "--kind", "reviewer", "--json"]);
    expect(result.code).toBe(0);
    const { kind, key, key_sha256 } = JSON.parse(result.stdout) as Record<string, string>;
    expect(kind).toBe("reviewer");
    expect(key).toMatch(/^writ_reviewer_[A-Za-z0-9_-]{43}$/);
    expect(key_sha256).toBe(
      createHash("sha256")
        .update(key ?? "")
        .digest("hex"),
    );
  });
});
