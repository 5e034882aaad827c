import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import type { DevIdentities } from "../../src/config/dev-identities.js";
import { createWritClient, type WritClient } from "../../src/sdk/client.js";

// A whole run against `writ dev` as a user starts it, then a search for every secret
// of the run in everything it left: the event stream, the log files, the server's
// stdout and stderr, and the console's pages.

const ROOT = resolve(import.meta.dirname, "../..");
const START_TIMEOUT_MS = 20_000;

let dataDir = "";
let child: ChildProcessWithoutNullStreams | undefined;
let stdout = "";
let stderr = "";
let url = "";
let ids: DevIdentities;
const secrets = new Map<string, string>();
const outputs = new Map<string, string>();

function client(key: string): WritClient {
  return createWritClient({ url, key });
}

/** A console session over real HTTP: cookies kept, forms posted as a browser does. */
async function consoleAs(key: string) {
  const cookies = new Map<string, string>();
  const request = async (path: string, form?: Record<string, string>) => {
    const res = await fetch(`${url}${path}`, {
      method: form === undefined ? "GET" : "POST",
      redirect: "manual",
      headers: {
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(form !== undefined ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      ...(form !== undefined ? { body: new URLSearchParams(form).toString() } : {}),
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const eq = pair.indexOf("=");
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return { status: res.status, html: await res.text() };
  };
  const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? "";
  const login = await request("/console/login");
  const signedIn = await request("/console/login", { csrf: csrfOf(login.html), key });
  expect(signedIn.status).toBe(303);
  const session = cookies.get("writ_console");
  if (session !== undefined) secrets.set(`console session of ${key.slice(0, 14)}`, session);
  return { request, csrfOf };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-secrets-"));
  child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "src/cli/bin.ts"),
      "dev",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--policies",
      join(ROOT, "policies"),
    ],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } },
  );
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
    if (match?.[1] !== undefined) {
      url = match[1];
      break;
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`writ dev did not start: ${stderr}`);
    }
    await new Promise((wake) => child?.stdout.once("data", wake).once("close", wake));
  }
  ids = JSON.parse(await readFile(join(dataDir, "dev-identities.json"), "utf8")) as DevIdentities;
  for (const list of [ids.agents, ids.reviewers, ids.auditors, ids.resource_servers]) {
    for (const p of list) secrets.set(`key of ${p.id}`, p.key);
  }
}, START_TIMEOUT_MS + 10_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
  await rm(dataDir, { recursive: true, force: true });
});

const keyOf = (id: string) => {
  const all = [...ids.agents, ...ids.reviewers, ...ids.auditors, ...ids.resource_servers];
  const found = all.find((p) => p.id === id);
  if (found === undefined) throw new Error(`no ${id}`);
  return found.key;
};

describe("secrets after a full run", () => {
  it("appear nowhere: not in the stream, the log, the server's output or the console", async () => {
    const agent = client(keyOf("report-agent"));
    const exported = await agent.request({
      action: "db:export",
      resource: "db://prod/customers",
      audience: "billing-api",
      reason: "quarterly churn analysis",
    });
    await expect(client(keyOf("alice")).approve(exported.id)).rejects.toMatchObject({
      code: "self_approval_forbidden",
    });
    await client(keyOf("bob")).approve(exported.id, "looks right");
    const carol = await consoleAs(keyOf("carol"));
    const page = await carol.request(`/console/requests/${exported.id}`);
    const approved = await carol.request(`/console/requests/${exported.id}/approve`, {
      csrf: carol.csrfOf(page.html),
    });
    expect(approved.status).toBe(303);
    const credential = await agent.collectCredential(exported.id);
    if (credential.type !== "jwt") throw new Error("expected a JWT");
    secrets.set("exported token", credential.token);
    const rs = client(keyOf("billing-api"));
    await rs.consume(credential.token);
    await expect(rs.consume(credential.token)).rejects.toMatchObject({ code: "token_replayed" });

    const read = await agent.request({
      action: "s3:GetObject",
      resource: "arn:aws:s3:::demo-reports/q3.csv",
      audience: "billing-api",
    });
    const second = await agent.collectCredential(read.id);
    if (second.type === "jwt") secrets.set("read token", second.token);

    // The signing keys, from the files writ keeps them in.
    const jwtKeys = JSON.parse(await readFile(join(dataDir, "keys", "jwt.json"), "utf8")) as {
      keys: { private_jwk: { d: string } }[];
    };
    for (const [i, k] of jwtKeys.keys.entries())
      secrets.set(`JWT signing key ${i}`, k.private_jwk.d);
    const checkpointKey = JSON.parse(
      await readFile(join(dataDir, "keys", "checkpoint.json"), "utf8"),
    ) as { private_jwk: { d: string } };
    secrets.set("checkpoint signing key", checkpointKey.private_jwk.d);

    // The console's pages, as each kind of user sees them.
    const dana = await consoleAs(keyOf("dana"));
    const integrity = await dana.request("/console/integrity");
    await dana.request("/console/integrity/verify", { csrf: dana.csrfOf(integrity.html) });
    const pages = [
      "/console/login",
      "/console/requests",
      "/console/pending",
      "/console/integrity",
      `/console/requests/${exported.id}`,
      `/console/requests/${read.id}`,
    ];
    for (const path of pages) {
      outputs.set(`console ${path} (dana)`, (await dana.request(path)).html);
      outputs.set(`console ${path} (carol)`, (await carol.request(path)).html);
    }

    // The stream, as auditors and SIEMs read it.
    const auditor = client(keyOf("dana"));
    let after: string | undefined;
    const stream: unknown[] = [];
    for (;;) {
      const events = await auditor.events({ limit: 1000, ...(after ? { after } : {}) });
      stream.push(...events.items);
      if (events.next === undefined) break;
      after = events.next;
    }
    expect(stream.length).toBeGreaterThan(10);
    outputs.set("event stream", JSON.stringify(stream));

    // Stop the server (it writes its last checkpoint), then read what it left.
    child?.kill("SIGTERM");
    await new Promise<void>((done) => {
      if (child?.exitCode !== null) done();
      else child.once("close", () => done());
    });
    expect(child?.exitCode).toBe(0);
    outputs.set("server stdout", stdout);
    outputs.set("server stderr", stderr);
    const auditDir = join(dataDir, "audit");
    for (const name of await readdir(auditDir)) {
      if (name.endsWith(".jsonl"))
        outputs.set(`log ${name}`, await readFile(join(auditDir, name), "utf8"));
    }
    expect([...outputs.keys()].some((k) => k.startsWith("log audit-"))).toBe(true);
    expect(outputs.get("log audit-000001.jsonl")).toContain("token.replay_blocked");

    expect(secrets.size).toBeGreaterThanOrEqual(11);
    const found: string[] = [];
    for (const [where, text] of outputs) {
      for (const [what, secret] of secrets) {
        if (text.includes(secret)) found.push(`${what} in ${where}`);
      }
      // Any JWT at all, not only the ones this test knows of.
      if (/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/.test(text))
        found.push(`a JWT in ${where}`);
    }
    expect(found).toEqual([]);

    // And the log it left verifies, to its shutdown checkpoint.
    let out = "";
    const code = await runCli(["audit", "verify", "--data-dir", dataDir], {
      stdout: (text) => {
        out += text;
      },
      stderr: () => {},
      env: {},
      stderrIsTty: false,
    });
    expect(out).toMatch(/^ok: /);
    expect(code).toBe(0);
  });
});
