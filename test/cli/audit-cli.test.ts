import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import {
  allEvents,
  approveAs,
  CUSTOMERS_EXPORT,
  collectToken,
  createRequest,
  keyOf,
  NO_REFUSAL_LIMIT,
  S3_READ,
} from "../support/api.js";
import { startTestWrit, type TestWrit } from "../support/harness.js";

const ROOT = resolve(import.meta.dirname, "../..");
const RUN_TIMEOUT_MS = 20_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process, as `writ …` with this environment. */
async function writ(
  args: readonly string[],
  env: Record<string, string> = {},
  tty = false,
): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env,
    stderrIsTty: tty,
  });
  return { code, stdout, stderr };
}

let t: TestWrit;
let server: ServerType;
let url = "";
let env: Record<string, string>;
let exportId = "";
let token = "";

beforeAll(async () => {
  t = await startTestWrit(NO_REFUSAL_LIMIT);
  server = await new Promise<ServerType>((ready) => {
    const s = serve({ fetch: t.writ.app.fetch, hostname: "127.0.0.1", port: 0 }, () => ready(s));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  env = { WRIT_URL: url, WRIT_KEY: keyOf(t, "dana") };

  // A full story: asked with a reason a spreadsheet would run, approved by two, issued,
  // used, replayed. Then an S3 read an hour later.
  const exported = await createRequest(t, { ...CUSTOMERS_EXPORT, reason: '=HYPERLINK("x")' });
  exportId = exported.id;
  await approveAs(t, "bob", exportId);
  await approveAs(t, "carol", exportId);
  token = await collectToken(t, exportId);
  const consume = () =>
    t.call("POST", "/v1/tokens/consume", { key: keyOf(t, "billing-api"), body: { token } });
  expect((await consume()).status).toBe(200);
  expect((await consume()).status).toBe(409);
  t.clock.advance(3600);
  await createRequest(t, S3_READ);
});

const children: ChildProcessWithoutNullStreams[] = [];

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  (server as Server | undefined)?.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
  await t.close();
});

describe("writ audit verify", () => {
  it("verifies the data dir's log, and says where the key came from", async () => {
    // The running writ's log: everything fsynced so far, with its open checkpoint.
    const result = await writ(["audit", "verify", "--data-dir", t.dataDir]);
    expect(result.stderr).toContain("checkpoint key read from");
    expect(result.stdout).toMatch(/^ok: \d+ entries in 1 segment\(s\)/);
    expect(result.code).toBe(0);
  });

  it("pins a key given out of band, file or inline, and refuses a wrong one", async () => {
    const res = await t.call("GET", "/v1/audit/checkpoint-key");
    const published = await res.text();
    const keyFile = join(t.dataDir, "published-key.json");
    await writeFile(keyFile, published);
    const dir = join(t.dataDir, "audit");
    for (const key of [keyFile, published]) {
      const result = await writ(["audit", "verify", dir, "--checkpoint-key", key]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
    }
    const other = await mkdtemp(join(tmpdir(), "writ-otherkey-"));
    try {
      const { loadCheckpointKey } = await import("../../src/audit/checkpoint-key.js");
      const { signer } = await loadCheckpointKey(join(other, "k.json"), { create: true });
      const wrong = await writ([
        "audit",
        "verify",
        dir,
        "--checkpoint-key",
        JSON.stringify(signer.publicJwk),
        "--json",
      ]);
      expect(wrong.code).toBe(1);
      expect(JSON.parse(wrong.stdout)).toMatchObject({
        ok: false,
        reason: expect.stringContaining("signed by an unknown key"),
      });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("names the first bad seq of a tampered copy, with a progress bar only on a terminal", async () => {
    const copy = await mkdtemp(join(tmpdir(), "writ-copy-"));
    try {
      const segment = await readFile(join(t.dataDir, "audit", "audit-000001.jsonl"), "utf8");
      const lines = segment.trimEnd().split("\n");
      lines[2] = (lines[2] as string).replace('"seq":3', '"seq":3,"note":"x"');
      await writeFile(join(copy, "audit-000001.jsonl"), `${lines.join("\n")}\n`);
      await writeFile(
        join(copy, "checkpoints.jsonl"),
        await readFile(join(t.dataDir, "audit", "checkpoints.jsonl")),
      );
      const keyArgs = ["--data-dir", t.dataDir];
      const result = await writ(["audit", "verify", copy, ...keyArgs], {}, true);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain("NOT INTACT: first bad seq 3 (audit-000001.jsonl, line 3)");
      expect(result.stdout).not.toContain("\r");
      expect(result.stderr).toContain("\rverifying [");
      const piped = await writ(["audit", "verify", copy, ...keyArgs]);
      expect(piped.stderr).not.toContain("\r");
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("refuses bad command lines and says what is missing", async () => {
    expect((await writ(["audit", "verify", "a", "b"])).code).toBe(2);
    expect((await writ(["audit", "verify", "--bogus"])).code).toBe(2);
    const file = join(t.dataDir, "audit", "audit-000001.jsonl");
    expect((await writ(["audit", "verify", file])).code).toBe(2);
    const missing = await writ(["audit", "verify", join(t.dataDir, "nope")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no audit log at");
    const nokey = await writ([
      "audit",
      "verify",
      join(t.dataDir, "audit"),
      "--data-dir",
      "/nonexistent-writ",
    ]);
    expect(nokey.code).toBe(1);
    expect(nokey.stderr).toContain("pass --checkpoint-key");
    const badkey = await writ([
      "audit",
      "verify",
      join(t.dataDir, "audit"),
      "--checkpoint-key",
      "{}",
    ]);
    expect(badkey.code).toBe(1);
  });
});

describe("writ audit export", () => {
  it("writes every event as JSON lines, in stream order", async () => {
    const result = await writ(["audit", "export"], env);
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string });
    const events = await allEvents(t);
    expect(lines.map((l) => l.id)).toEqual(events.map((e) => e.id));
    expect(result.stderr).toContain(`exported ${events.length} event(s)`);
  });

  it("writes a time range as CSV, defusing formulas", async () => {
    const result = await writ(
      ["audit", "export", "--format", "csv", "--until", "2026-01-15T09:30:00Z"],
      env,
    );
    expect(result.code).toBe(0);
    const rows = result.stdout.trimEnd().split("\n");
    expect(rows[0]).toBe("id,time,type,request_id,actor_kind,actor_id,data");
    expect(rows.some((r) => r.includes("s3:GetObject"))).toBe(false);
    const created = rows.find((r) => r.includes('"request.created"')) ?? "";
    expect(created).toContain(exportId);
    expect(created).toContain('""reason"":""=HYPERLINK(\\""x\\"")""');
    const later = await writ(["audit", "export", "--since", "2026-01-15T09:30:00Z"], env);
    expect(later.stdout).toContain("s3:GetObject");
    expect(later.stdout).not.toContain(exportId);
  });

  it("draws progress only on a terminal, and refuses bad options and wrong keys", async () => {
    const tty = await writ(["audit", "export"], env, true);
    expect(tty.stderr).toContain("\rexporting [");
    expect(tty.stdout).not.toContain("\r");
    for (const args of [
      ["--format", "xml"],
      ["--since", "yesterday"],
      ["--since", "2026-01-16", "--until", "2026-01-15"],
      ["extra"],
    ]) {
      expect((await writ(["audit", "export", ...args], env)).code, args.join(" ")).toBe(2);
    }
    expect((await writ(["audit", "export"], { WRIT_URL: url })).code).toBe(2);
    const agent = await writ(["audit", "export"], { ...env, WRIT_KEY: keyOf(t, "report-agent") });
    expect(agent.code).toBe(1);
    expect(agent.stderr).toContain("wrong_principal_kind");
  });

  it("refuses a day or hour that does not exist, naming the option, rather than rolling it over", async () => {
    for (const [option, value] of [
      ["--since", "2026-02-30"],
      ["--until", "2026-04-31"],
      ["--since", "2026-02-29"],
      ["--since", "2026-02-31T10:00:00Z"],
      ["--until", "2026-01-15T24:00Z"],
      ["--until", "2026-01-15T24:00:00Z"],
    ] as const) {
      const result = await writ(["audit", "export", option, value], env);
      expect(result.code, `${option} ${value}`).toBe(2);
      expect(result.stderr).toContain(`${option} ${value}`);
      expect(result.stdout).toBe("");
    }
    // A leap day that exists, and the last second of a day, are taken as written.
    for (const value of ["2024-02-29", "2026-01-15T23:59:59Z"]) {
      expect((await writ(["audit", "export", "--since", value], env)).code, value).toBe(0);
    }
  });
});

describe("writ audit show", () => {
  it("prints one credential's story in order", async () => {
    const result = await writ(["audit", "show", exportId], env);
    expect(result.code).toBe(0);
    const out = result.stdout;
    const order = [
      "Requested",
      "Decided by policy: approve",
      "customers-export",
      "Approved by bob",
      "Approved by carol",
      "Credential issued",
      "Used by billing-api",
      "Replay blocked",
    ];
    let at = 0;
    for (const text of order) {
      const next = out.indexOf(text, at);
      expect(next, text).toBeGreaterThan(-1);
      at = next;
    }
    expect(out).not.toContain(token);
    const json = JSON.parse((await writ(["audit", "show", exportId, "--json"], env)).stdout) as {
      events: unknown[];
    };
    expect(json.events.length).toBeGreaterThanOrEqual(8);
  });

  it("reads every page of a long story, folding a flood of replays into a count", async () => {
    const { id } = await createRequest(t, S3_READ);
    const replayed = await collectToken(t, id);
    const consume = () =>
      t.call("POST", "/v1/tokens/consume", {
        key: keyOf(t, "billing-api"),
        body: { token: replayed },
      });
    expect((await consume()).status).toBe(200);
    // More replays than one page of the API holds (1,000).
    const REPLAYS = 1_205;
    for (let i = 0; i < REPLAYS; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, REPLAYS - i) }, consume));
    }
    const text = await writ(["audit", "show", id], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.match(/Replay blocked/g)).toHaveLength(3);
    expect(text.stdout).toContain(
      `… ${REPLAYS - 3} more token.replay_blocked event(s), the last at`,
    );
    const json = JSON.parse((await writ(["audit", "show", id, "--json"], env)).stdout) as {
      request: { id: string };
      events: { type: string }[];
    };
    expect(json.request.id).toBe(id);
    expect(json.events.filter((e) => e.type === "token.replay_blocked")).toHaveLength(REPLAYS);
  });

  it("answers not_found and bad ids clearly", async () => {
    const missing = await writ(["audit", "show", "req_AAAAAAAAAAAAAAAAAAAAAA"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("not_found");
    expect((await writ(["audit", "show", "../etc"], env)).code).toBe(2);
  });
});

/** `writ audit tail` as a separate process, as a shipper runs it. */
function spawnTail(args: readonly string[]): {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  waitFor(count: number): Promise<void>;
  exited: Promise<{ code: number | null; stderr: string }>;
} {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "src/cli/bin.ts"), "audit", "tail", ...args],
    { cwd: ROOT, env: { ...process.env, ...env, NO_COLOR: "1" } },
  );
  children.push(child);
  const lines: string[] = [];
  let buffer = "";
  let stderr = "";
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((done) =>
    child.on("close", (code) => done({ code, stderr })),
  );
  return {
    child,
    lines,
    exited,
    async waitFor(count) {
      const deadline = Date.now() + RUN_TIMEOUT_MS;
      while (lines.length < count) {
        if (Date.now() > deadline) throw new Error(`tail printed ${lines.length} lines: ${stderr}`);
        await new Promise<void>((wake) => {
          waiters.push(wake);
          setTimeout(wake, 200);
        });
      }
    },
  };
}

describe("writ audit tail", () => {
  it("follows new events, filtered, saves its position and resumes from it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "writ-tail-"));
    const cursor = join(dir, "cursor");
    try {
      const first = spawnTail(["--json", "--type", "credential.issued", "--cursor-file", cursor]);
      // It starts at the end of the stream: nothing old is printed. Then new issues show.
      await expect
        .poll(() => readFile(cursor, "utf8").catch(() => ""), { timeout: RUN_TIMEOUT_MS })
        .not.toBe("");
      const a = await createRequest(t, S3_READ);
      await collectToken(t, a.id);
      await first.waitFor(1);
      first.child.kill("SIGINT");
      expect((await first.exited).code).toBe(0);
      const printed = first.lines.map((l) => JSON.parse(l) as { type: string; request_id: string });
      expect(printed).toEqual([
        expect.objectContaining({ type: "credential.issued", request_id: a.id }),
      ]);
      const saved = (await readFile(cursor, "utf8")).trim();
      expect(saved).toMatch(/^\d+$/);

      // Missed while stopped; the next run resumes after the saved position.
      const b = await createRequest(t, S3_READ);
      await collectToken(t, b.id);
      const second = spawnTail(["--cursor-file", cursor, "--agent", "report-agent"]);
      await second.waitFor(2);
      second.child.kill("SIGINT");
      expect((await second.exited).code).toBe(0);
      expect(second.lines.join("\n")).toContain(b.id);
      expect(second.lines.join("\n")).not.toContain(a.id);
      expect(second.lines[0]).toMatch(/request\.created/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("takes a workload identity's agent id for --agent", async () => {
    const dir = await mkdtemp(join(tmpdir(), "writ-tail-"));
    const cursor = join(dir, "cursor");
    try {
      const tail = spawnTail([
        "--from-start",
        "--agent",
        "gh:acme/reports",
        "--cursor-file",
        cursor,
      ]);
      // The position is saved once the first batch is read: the tail ran, and that
      // agent has nothing in the stream. A refused option ends it at once instead.
      const saved = () => readFile(cursor, "utf8").catch(() => "");
      await expect
        .poll(async () => tail.child.exitCode !== null || (await saved()) !== "", {
          timeout: RUN_TIMEOUT_MS,
        })
        .toBe(true);
      tail.child.kill("SIGINT");
      const { code, stderr } = await tail.exited;
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(tail.lines).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses bad options", async () => {
    for (const args of [
      ["--type", "nope"],
      ["--request", "req_x"],
      ["--after", "abc"],
      ["--after", "1", "--from-start"],
      ["--agent", "<x>"],
    ]) {
      expect((await writ(["audit", "tail", ...args], env)).code, args.join(" ")).toBe(2);
    }
  });

  it("refuses an --after or saved position that is not an event id writ hands out, before asking the server", async () => {
    // Each looks like digits and dashes, but no store writes it: "0" and "007" are not
    // canonical, "1-2-3" has three parts, the last two overflow their integer.
    const malformed = [
      "0",
      "007",
      "1-2-3",
      "1--2",
      "-",
      "17-",
      "99999999999999999",
      "1-18446744073709551616",
    ];
    for (const id of malformed) {
      const result = await writ(["audit", "tail", "--after", id], env);
      expect(result.code, id).toBe(2);
      expect(result.stderr, id).toMatch(/^writ audit tail: --after takes an event id/);
      expect(result.stderr, id).toContain("writ audit tail --help");
      expect(result.stderr, id).not.toContain("validation_failed");
    }
    const dir = await mkdtemp(join(tmpdir(), "writ-tail-"));
    try {
      const cursor = join(dir, "cursor");
      for (const id of malformed) {
        await writeFile(cursor, `${id}\n`);
        const result = await writ(["audit", "tail", "--cursor-file", cursor], env);
        expect(result.code, id).toBe(2);
        expect(result.stderr, id).toContain("does not hold an event id");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
