import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadCheckpointKey } from "../src/audit/checkpoint-key.js";
import { openFileAuditLog } from "../src/audit/file-audit-log.js";
import { listSegments } from "../src/audit/segments.js";
import { runCli } from "../src/cli/main.js";
import type { RecordedEvent } from "../src/domain/events.js";

// `npm run bench:audit` (and part of `npm run bench`): writes an audit log of
// --entries entries through the real writer (segments, signed checkpoints every
// 1,000 entries), then times `writ audit verify` on it as a user runs it.
// Figures are printed, never asserted. See docs/performance.md.

const ROOT = resolve(import.meta.dirname, "..");
const { values } = parseArgs({
  options: {
    entries: { type: "string", default: "1000000" },
    batch: { type: "string", default: "10000" },
  },
});
const ENTRIES = Number(values.entries);
const BATCH = Number(values.batch);
if (![ENTRIES, BATCH].every((n) => Number.isInteger(n) && n > 0)) {
  throw new TypeError("--entries and --batch take positive integers");
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const T0 = Date.parse("2026-01-15T09:00:00.000Z");

/** Events shaped like writ's: the mix of a request's life, with realistic sizes. */
function event(n: number): RecordedEvent {
  const requestId = `req_${String(Math.floor(n / 6)).padStart(22, "0")}`;
  const base = { id: String(n), requestId, time: T0 + n * 10 };
  switch (n % 6) {
    case 0:
      return {
        ...base,
        type: "request.created",
        actor: { kind: "agent", id: "report-agent" },
        data: {
          agent: "report-agent",
          owner: "alice",
          action: "db:export",
          resource: "db://prod/customers",
          credential_type: "jwt",
          audience: "billing-api",
          reason: "quarterly churn analysis",
          ttl_seconds: 300,
        },
      };
    case 1:
      return {
        ...base,
        type: "request.decided",
        actor: { kind: "system", id: "writ" },
        data: {
          effect: "approve",
          policies: ["customers-export"],
          requirements: [{ groups: ["data-owners"], quorum: 2 }],
        },
      };
    case 2:
    case 3:
      return {
        ...base,
        type: "approval.granted",
        actor: { kind: "reviewer", id: n % 6 === 2 ? "bob" : "carol" },
        data: {
          reviewer: n % 6 === 2 ? "bob" : "carol",
          groups: ["data-owners"],
          channel: "slack",
          approvals: n % 6 === 2 ? 1 : 2,
        },
      };
    case 4:
      return {
        ...base,
        type: "credential.issued",
        actor: { kind: "agent", id: "report-agent" },
        data: {
          credential_type: "jwt",
          credential_id: `jti_${String(n).padStart(22, "0")}`,
          expires_at: new Date(base.time + 300_000).toISOString(),
          action: "db:export",
          resource: "db://prod/customers",
          audience: "billing-api",
        },
      };
    default:
      return {
        ...base,
        type: "token.used",
        actor: { kind: "resource_server", id: "billing-api" },
        data: {
          credential_id: `jti_${String(n - 1).padStart(22, "0")}`,
          resource_server: "billing-api",
        },
      };
  }
}

function run(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; ms: number }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "src/cli/bin.ts"), ...args],
    {
      cwd: ROOT,
    },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.pipe(process.stderr);
  return new Promise((done, reject) => {
    child.on("error", reject);
    child.on("close", (code) => done({ code, stdout, ms: performance.now() - started }));
  });
}

const dir = await mkdtemp(join(tmpdir(), "writ-bench-audit-"));
try {
  const keyFile = join(dir, "checkpoint.json");
  const { signer } = await loadCheckpointKey(keyFile, { create: true });
  const auditDir = join(dir, "audit");
  log(`writing ${ENTRIES.toLocaleString("en")} entries to ${auditDir} …`);
  const writeStarted = performance.now();
  const writer = await openFileAuditLog({
    dir: auditDir,
    checkpoints: { signer, everyEntries: 1000, schedule: () => () => {} },
  });
  for (let from = 1; from <= ENTRIES; from += BATCH) {
    const count = Math.min(BATCH, ENTRIES - from + 1);
    await writer.append(Array.from({ length: count }, (_, i) => event(from + i)));
  }
  await writer.close();
  const writeSeconds = (performance.now() - writeStarted) / 1000;
  const segments = await listSegments(auditDir);
  let bytes = 0;
  for (const s of segments) bytes += (await stat(s.path)).size;

  // The CLI as a user runs it; the key pinned as an auditor would.
  const args = ["audit", "verify", auditDir, "--checkpoint-key", keyFile, "--json"];
  const verify = await run(args);
  // The same command in this process as well, for its CPU time: on a shared machine
  // the wall time above also counts everyone else's work.
  const cpuBefore = process.cpuUsage();
  const inProcessStarted = performance.now();
  const inProcessCode = await runCli(args, {
    stdout: () => {},
    stderr: () => {},
    env: {},
    stderrIsTty: false,
  });
  const inProcessMs = performance.now() - inProcessStarted;
  const cpu = process.cpuUsage(cpuBefore);
  const result = JSON.parse(verify.stdout) as {
    ok: boolean;
    entries: number;
    checkpoints?: number;
  };
  const report = {
    entries: ENTRIES,
    megabytes: Math.round(bytes / 1e6),
    segments: segments.length,
    write_seconds: Number(writeSeconds.toFixed(2)),
    verify_ok: result.ok,
    verified_entries: result.entries,
    checkpoints: result.checkpoints ?? 0,
    verify_seconds_wall: Number((verify.ms / 1000).toFixed(2)),
    verify_entries_per_second: Math.round(ENTRIES / (verify.ms / 1000)),
    in_process_verify_seconds_wall: Number((inProcessMs / 1000).toFixed(2)),
    in_process_verify_seconds_cpu: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (verify.code !== 0 || !result.ok || inProcessCode !== 0) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
