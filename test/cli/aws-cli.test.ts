import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { cp, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DevIdentities } from "../../src/config/dev-identities.js";
import { createWritClient } from "../../src/sdk/client.js";
import { BIN, ROOT, startWritCli } from "../support/cli.js";
import {
  type FakeAws,
  startFakeAws,
  TEST_ACCESS_KEY_ID,
  TEST_REGION,
  TEST_SECRET_ACCESS_KEY,
} from "../support/fake-aws.js";
import { startHttpGate } from "../support/http-gate.js";

// The built CLI (`npm test` builds first) against a `writ dev` whose AWS SDK
// clients find the fake STS/IAM through the SDK's own environment conventions.

const RUN_TIMEOUT_MS = 15_000;
const ROLE = "arn:aws:iam::111122223333:role/writ-demo";
const READ = ["--action", "s3:GetObject", "--resource", "arn:aws:s3:::demo-reports/q3.csv"];
const VAULT = ["--action", "s3:GetObject", "--resource", "arn:aws:s3:::vault/plans.csv"];

// A command for `writ exec` to run: it writes the AWS and writ variables it
// sees to a file, says hello on stdout and exits with the code it is given.
const PROBE = `
const fs = require("node:fs");
const [out, code] = process.argv.slice(1);
const names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "WRIT_KEY", "WRIT_URL"];
fs.writeFileSync(out, JSON.stringify(Object.fromEntries(names.map((n) => [n, process.env[n] ?? null]))));
process.stdout.write("hello from the command\\n");
process.exit(Number(code));
`;

let fake: FakeAws;
let devServer: ChildProcessWithoutNullStreams | undefined;
let dataDir = "";
let url = "";
let ids: DevIdentities;

/** The environment of every process here: no AWS settings but the test's. */
function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("AWS_") && !name.startsWith("WRIT_")) env[name] = value;
  }
  return {
    ...env,
    NO_COLOR: "1",
    AWS_CONFIG_FILE: join(dataDir, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(dataDir, "no-aws-credentials"),
    ...extra,
  };
}

function keyOf(id: string): string {
  const all = [...ids.agents, ...ids.reviewers, ...ids.auditors, ...ids.resource_servers];
  const key = all.find((p) => p.id === id)?.key;
  if (key === undefined) throw new Error(`no demo key for ${id}`);
  return key;
}

function agentEnv(extra: NodeJS.ProcessEnv = {}) {
  return baseEnv({ WRIT_URL: url, WRIT_KEY: keyOf("report-agent"), ...extra });
}

function start(args: readonly string[], env: NodeJS.ProcessEnv) {
  return startWritCli(args, env, RUN_TIMEOUT_MS);
}

const writ = (args: readonly string[], env = agentEnv()) => start(args, env).done;

function waitForOutput(stream: Readable, pattern: RegExp, timeoutMs = 10_000) {
  return new Promise<RegExpMatchArray>((resolvePromise, reject) => {
    let seen = "";
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      const match = seen.match(pattern);
      if (match !== null) finish(() => resolvePromise(match));
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${seen}`))),
      timeoutMs,
    );
    function finish(settle: () => void) {
      clearTimeout(timer);
      stream.off("data", onData);
      settle();
    }
    stream.on("data", onData);
  });
}

async function probeRun(args: readonly string[], code: number, env = agentEnv()) {
  const out = join(dataDir, `probe-${Math.random().toString(36).slice(2)}.json`);
  const result = await writ(
    ["exec", ...args, "--", process.execPath, "-e", PROBE, out, String(code)],
    env,
  );
  const seen = await readFile(out, "utf8").then(
    (text) => JSON.parse(text) as Record<string, string | null>,
    () => undefined,
  );
  return { result, seen, out };
}

function requestIdIn(text: string): string {
  const id = text.match(/(req_[A-Za-z0-9_-]{22})/)?.[1];
  if (id === undefined) throw new Error(`no request id in: ${text}`);
  return id;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "writ-aws-cli-"));
  fake = await startFakeAws();
  const policies = join(dataDir, "policies");
  await cp(join(ROOT, "policies"), policies, { recursive: true });
  await writeFile(
    join(policies, "vault.cedar"),
    `@id("vault-read") @approvers("data-owners")
permit (principal, action == Action::"s3:GetObject", resource)
when { resource.uri like "arn:aws:s3:::vault/*" };
@id("lab") permit (principal, action, resource) when { resource.uri like "arn:aws:s3:::lab/*" };\n`,
  );
  devServer = spawn(
    process.execPath,
    [BIN, "dev", "--port", "0", "--data-dir", dataDir, "--policies", policies, "--quiet"],
    {
      cwd: ROOT,
      env: baseEnv({
        WRIT_AWS_ROLE_ARN: ROLE,
        AWS_REGION: TEST_REGION,
        AWS_ENDPOINT_URL_STS: fake.url,
        AWS_ENDPOINT_URL_IAM: fake.url,
        AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
      }),
    },
  );
  devServer.stderr.resume();
  const listening = waitForOutput(devServer.stdout, /listening on (http:\/\/\S+)/, 15_000);
  devServer.stdout.resume();
  url = (await listening)[1] ?? "";
  ids = JSON.parse(await readFile(join(dataDir, "dev-identities.json"), "utf8")) as DevIdentities;
});

afterAll(async () => {
  const server = devServer;
  if (server !== undefined && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise<void>((r) => server.once("exit", () => r()));
    server.kill("SIGTERM");
    const force = setTimeout(() => server.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(force);
  }
  await fake?.close();
  if (dataDir !== "") await rm(dataDir, { recursive: true, force: true });
});

describe("writ exec", () => {
  it("runs the command with the session in its environment only, passes its exit code, completes", async () => {
    const { result, seen } = await probeRun(READ, 7, agentEnv({ AWS_PROFILE: "admin" }));
    expect(result.code, result.stderr).toBe(7);
    // stdout is the command's alone: the credentials are never printed.
    expect(result.stdout).toBe("hello from the command\n");
    const session = fake.sessions.find((s) => s.accessKeyId === seen?.AWS_ACCESS_KEY_ID);
    expect(session).toBeDefined();
    expect(seen).toMatchObject({
      AWS_SECRET_ACCESS_KEY: session?.secretAccessKey,
      AWS_SESSION_TOKEN: session?.sessionToken,
      AWS_PROFILE: null,
      WRIT_KEY: null,
    });
    expect(Date.parse(seen?.AWS_CREDENTIAL_EXPIRATION ?? "")).toBeGreaterThan(Date.now());
    expect(result.stderr).not.toContain(session?.secretAccessKey ?? "-");
    expect(session).toMatchObject({ roleArn: ROLE, sourceIdentity: "report-agent" });
    expect(JSON.parse(session?.policy ?? "{}")).toMatchObject({
      Statement: [
        { Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::demo-reports/q3.csv" },
      ],
    });

    const id = requestIdIn(result.stderr);
    const agent = createWritClient({ url, key: keyOf("report-agent") });
    expect((await agent.get(id)).status).toBe("completed");
    const grant = session?.tags["writ-grant"] ?? "-";
    expect(fake.rolePolicy("writ-demo", "writ-revocations")).toContain(grant);
    expect(fake.signatureFailures).toEqual([]);
  });

  it("exits 0 with the command, and leaves --help after -- to the command", async () => {
    const help = await writ([
      "exec",
      ...READ,
      "--",
      process.execPath,
      "-e",
      "process.exit(process.argv.includes('--help') ? 0 : 6)",
      "--",
      "--help",
    ]);
    expect(help.code, help.stderr).toBe(0);
  });

  it("shows who must approve, waits, then runs", async () => {
    const out = join(dataDir, "after-approval.json");
    const running = start(
      ["exec", ...VAULT, "--", process.execPath, "-e", PROBE, out, "0"],
      agentEnv(),
    );
    const [, id = ""] = await waitForOutput(
      running.child.stderr,
      /(req_\S+)\s+pending[\s\S]*Waiting up to/,
    );
    const bob = createWritClient({ url, key: keyOf("bob") });
    await bob.approve(id);
    const result = await running.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("1 from data-owners");
    expect(result.stderr).toContain(`${id} approved by bob`);
    const seen = JSON.parse(await readFile(out, "utf8")) as Record<string, string>;
    expect(seen.AWS_ACCESS_KEY_ID).toMatch(/^ASIA/);
  });

  it("does not run the command when the request is refused", async () => {
    const denied = await probeRun(
      ["--action", "s3:GetObject", "--resource", "arn:aws:s3:::elsewhere/x.csv"],
      0,
    );
    expect(denied.result.code).toBe(3);
    expect(denied.result.stderr).toMatch(/^writ exec: policy_denied: /m);
    expect(denied.seen).toBeUndefined();

    const unknown = await probeRun(
      ["--action", "s3:GetObjects", "--resource", "arn:aws:s3:::lab/q3.csv"],
      0,
    );
    expect(unknown.result.code).toBe(1);
    expect(unknown.result.stderr).toMatch(/^writ exec: unknown_aws_action: /m);
    expect(unknown.seen).toBeUndefined();

    await expect(stat(unknown.out)).rejects.toThrow();
  });

  it("passes SIGTERM on to the command, answers 128 + 15, and still completes", async () => {
    const running = start(
      [
        "exec",
        ...READ,
        "--",
        process.execPath,
        "-e",
        "process.stdout.write('ready\\n'); setInterval(() => {}, 1000);",
      ],
      agentEnv(),
    );
    await waitForOutput(running.child.stdout, /ready/);
    running.child.kill("SIGTERM");
    const result = await running.done;
    expect(result.code, result.stderr).toBe(143);
    const agent = createWritClient({ url, key: keyOf("report-agent") });
    expect((await agent.get(requestIdIn(result.stderr))).status).toBe("completed");
  });

  it("answers 127 for a command that does not exist, and still completes", async () => {
    const result = await writ(["exec", ...READ, "--", "writ-test-no-such-command"]);
    expect(result.code).toBe(127);
    const id = requestIdIn(result.stderr);
    const agent = createWritClient({ url, key: keyOf("report-agent") });
    expect((await agent.get(id)).status).toBe("completed");
  });

  it("exits 2 on usage errors, before asking", async () => {
    // STS calls only: IAM calls of earlier tests' revocations may still land.
    const assumed = () => fake.calls.filter((call) => call.action === "AssumeRole").length;
    const before = assumed();
    for (const [args, message] of [
      [["exec", ...READ], /give the command to run after --/],
      [["exec", ...READ, "stray", "--", "true"], /unexpected argument "stray"/],
      [["credential-process", ...READ, "--context", "[1]"], /--context must be a JSON object/],
    ] as const) {
      const result = await writ(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(assumed()).toBe(before);
    const [overview, help] = await Promise.all([writ(["--help"]), writ(["exec", "--help"])]);
    expect(overview.stdout).toContain("writ exec");
    expect(overview.stdout).toContain("writ credential-process");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: writ exec");
  });
});

describe("when writ stops waiting or is asked to stop", () => {
  const agent = () => createWritClient({ url, key: keyOf("report-agent") });

  /** Starts writ, resolving with the request id once it says it is waiting. */
  async function startWaiting(args: readonly string[], env = agentEnv()) {
    const running = start(args, env);
    const [, id = ""] = await waitForOutput(
      running.child.stderr,
      /(req_\S+)\s+pending[\s\S]*Waiting up to/,
    );
    return { running, id };
  }

  it("withdraws the request when the wait times out, and says so", async () => {
    for (const command of ["exec", "credential-process"]) {
      const args = [command, ...VAULT, "--timeout", "1"];
      const result = await writ(command === "exec" ? [...args, "--", "true"] : args);
      expect(result.code, result.stderr).toBe(1);
      const id = requestIdIn(result.stderr);
      expect(result.stderr).toMatch(/wait_timeout/);
      expect(result.stderr).toContain(`${id} is cancelled`);
      expect(result.stdout).toBe("");
      expect((await agent().get(id)).status).toBe("cancelled");
    }
  });

  it("withdraws the request when SIGINT, SIGTERM or SIGHUP arrives while waiting, exiting 128 + the signal", async () => {
    const out = join(dataDir, "never-run.json");
    for (const [command, signal, code] of [
      ["exec", "SIGTERM", 143],
      ["exec", "SIGHUP", 129],
      ["credential-process", "SIGINT", 130],
    ] as const) {
      const args = [command, ...VAULT];
      const { running, id } = await startWaiting(
        command === "exec" ? [...args, "--", process.execPath, "-e", PROBE, out, "0"] : args,
      );
      running.child.kill(signal);
      const result = await running.done;
      expect(result.code, `${command} ${signal}: ${result.stderr}`).toBe(code);
      expect(result.stderr).toContain(`${signal} received while waiting; ${id} is cancelled`);
      expect((await agent().get(id)).status).toBe("cancelled");
    }
    await expect(stat(out)).rejects.toThrow();
  });

  it("names the request and how to withdraw it when the cancel fails", async () => {
    const gate = await startHttpGate(url);
    try {
      const cancel = gate.hold("POST", /\/cancel$/);
      const { running, id } = await startWaiting(
        ["credential-process", ...VAULT],
        agentEnv({ WRIT_URL: gate.url }),
      );
      running.child.kill("SIGTERM");
      // Without a cancel on the way out, writ ends without ever sending one.
      await Promise.race([cancel.arrived, running.done]);
      cancel.answer(
        503,
        JSON.stringify({ error: { code: "store_unavailable", message: "Redis is down." } }),
      );
      const result = await running.done;
      expect(result.code, result.stderr).toBe(143);
      expect(result.stderr).toContain(`${id} could not be cancelled (store_unavailable`);
      expect(result.stderr).toContain(`\`writ cancel ${id}\``);
      expect((await agent().get(id)).status).toBe("pending");
      await agent().cancel(id);

      // A cancel that gets no answer holds writ up for a bounded time only.
      const unanswered = gate.hold("POST", /\/cancel$/);
      const second = await startWaiting(
        ["credential-process", ...VAULT],
        agentEnv({ WRIT_URL: gate.url }),
      );
      const signalledAt = Date.now();
      second.running.child.kill("SIGTERM");
      const late = await second.running.done;
      expect(late.code, late.stderr).toBe(143);
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      expect(late.stderr).toContain(`${second.id} could not be cancelled (no answer within 5s)`);
      unanswered.release();
      await agent().cancel(second.id);
    } finally {
      await gate.close();
    }
  });

  it("does not run the command, and completes the request, when SIGTERM arrives while the credential is collected", async () => {
    const gate = await startHttpGate(url);
    try {
      const collect = gate.hold("POST", /\/credential$/);
      const out = join(dataDir, "not-started.json");
      const running = start(
        ["exec", ...READ, "--", process.execPath, "-e", PROBE, out, "0"],
        agentEnv({ WRIT_URL: gate.url }),
      );
      await collect.arrived;
      running.child.kill("SIGTERM");
      collect.release();
      const result = await running.done;
      expect(result.code, result.stderr).toBe(143);
      await expect(stat(out)).rejects.toThrow();
      expect((await agent().get(requestIdIn(result.stderr))).status).toBe("completed");
    } finally {
      await gate.close();
    }
  });

  it("still completes the request when SIGTERM arrives after the command exited", async () => {
    const gate = await startHttpGate(url);
    try {
      const complete = gate.hold("POST", /\/complete$/);
      const running = start(["exec", ...READ, "--", "true"], agentEnv({ WRIT_URL: gate.url }));
      await complete.arrived;
      running.child.kill("SIGTERM");
      complete.release();
      const result = await running.done;
      expect(result.code, result.stderr).toBe(143);
      expect((await agent().get(requestIdIn(result.stderr))).status).toBe("completed");
    } finally {
      await gate.close();
    }
  });

  it("passes a SIGINT sent to writ alone on to the command", async () => {
    const running = startWritCli(
      [
        "exec",
        ...READ,
        "--",
        process.execPath,
        "-e",
        "process.on('SIGINT', () => process.exit(5)); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);",
      ],
      agentEnv(),
      8_000,
    );
    await waitForOutput(running.child.stdout, /ready/);
    running.child.kill("SIGINT");
    const result = await running.done;
    expect(result.code, result.stderr).toBe(5);
    expect((await agent().get(requestIdIn(result.stderr))).status).toBe("completed");
  });
});

describe("writ credential-process", () => {
  it("prints the JSON the AWS CLI reads, and nothing else on stdout", async () => {
    const result = await writ(["credential-process", ...READ, "--reason", "weekly summary"]);
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual([
      "AccessKeyId",
      "Expiration",
      "SecretAccessKey",
      "SessionToken",
      "Version",
    ]);
    expect(parsed.Version).toBe(1);
    const session = fake.sessions.find((s) => s.accessKeyId === parsed.AccessKeyId);
    expect(parsed).toMatchObject({
      SecretAccessKey: session?.secretAccessKey,
      SessionToken: session?.sessionToken,
    });
    expect(Date.parse(String(parsed.Expiration))).toBeGreaterThan(Date.now());
  });

  it("is read by the AWS SDK's own credential_process support", async () => {
    const config = join(dataDir, "aws-config");
    await writeFile(
      config,
      `[profile writ]\ncredential_process = "${process.execPath}" "${BIN}" credential-process ${READ.join(" ")}\n`,
    );
    const script = `
      import { STSClient } from "@aws-sdk/client-sts";
      const client = new STSClient({ region: "${TEST_REGION}" });
      const credentials = await client.config.credentials();
      process.stdout.write(JSON.stringify(credentials));
    `;
    const sdk = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: ROOT,
      env: agentEnv({ AWS_CONFIG_FILE: config, AWS_PROFILE: "writ" }),
    });
    let stdout = "";
    let stderr = "";
    sdk.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    sdk.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise<number | null>((r) => sdk.on("close", r));
    expect(code, stderr).toBe(0);
    const credentials = JSON.parse(stdout) as { accessKeyId: string; expiration: string };
    const session = fake.sessions.find((s) => s.accessKeyId === credentials.accessKeyId);
    expect(session?.roleArn).toBe(ROLE);
    expect(Date.parse(credentials.expiration)).toBeGreaterThan(Date.now());
  });
});
