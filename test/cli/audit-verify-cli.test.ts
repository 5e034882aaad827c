import { execFile } from "node:child_process";
import { constants, createWriteStream } from "node:fs";
import { mkdtemp, open, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import type { CheckpointSigner } from "../../src/audit/checkpoint-key.js";
import { testSigner, writeCheckpointedLog } from "../audit/checkpointed-log.js";
import { type RunResult, startWritCli } from "../support/cli.js";

// These tests run the built CLI (`npm test` builds first) on a log written by the
// real writer, as an auditor would.

const RUN_TIMEOUT_MS = 15_000;

let root: string;
let dir: string;
let signer: CheckpointSigner;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-verify-cli-"));
  dir = join(root, "audit");
  // The data dir's layout: the log in audit/, its key in keys/checkpoint.json.
  signer = await testSigner(join(root, "keys"));
  await writeCheckpointedLog(dir, signer, { count: 30, segmentMaxBytes: 4096, everyEntries: 10 });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function writ(args: readonly string[], timeoutMs = RUN_TIMEOUT_MS): Promise<RunResult> {
  return startWritCli(["audit", "verify", ...args], { ...process.env }, timeoutMs).done;
}

/** The one JSON object on stdout, checking that nothing else is there. */
function onlyJson(result: RunResult): Record<string, unknown> {
  const lines = result.stdout.split("\n").filter(Boolean);
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] as string) as Record<string, unknown>;
}

/**
 * Cleans up after a test that writes to the FIFO at `path`: a writer still waiting
 * for a reader holds a thread of the pool until one comes.
 */
function releaseWriters(path: string): () => Promise<void> {
  return async () => {
    const reader = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => {});
    await reader?.close();
  };
}

/** No stack trace: an error is one line naming what failed. */
function expectNoStack(result: RunResult): void {
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stdout).not.toMatch(/^\s+at /m);
}

describe("writ audit verify --json", () => {
  it("prints one JSON object when a segment cannot be read", async () => {
    // A segment that is a link to nowhere fails as a read, for root too.
    const segment = join(dir, "audit-000002.jsonl");
    await unlink(segment);
    await symlink(join(root, "gone.jsonl"), segment);
    const result = await writ([dir, "--data-dir", root, "--json"]);
    expect(result.code).toBe(1);
    expect(onlyJson(result)).toEqual({
      ok: false,
      error: {
        code: "audit_log_unreadable",
        message: `cannot read ${segment} (ENOENT)`,
      },
      dir,
      checkpoint_key: join(root, "keys", "checkpoint.json"),
      pinned_key: false,
    });
    expectNoStack(result);

    const human = await writ([dir, "--data-dir", root]);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe("");
    expect(human.stderr).toContain(`writ audit verify: cannot read ${segment} (ENOENT)\n`);
    expectNoStack(human);
  });

  it("prints one JSON object when there is no log, or no usable key", async () => {
    const missing = join(root, "nope");
    const none = await writ([missing, "--data-dir", root, "--json"]);
    expect(none.code).toBe(1);
    expect(onlyJson(none)).toEqual({
      ok: false,
      error: { code: "audit_log_not_found", message: `no audit log at ${missing}` },
      dir: missing,
    });

    const nokey = await writ([dir, "--data-dir", join(root, "elsewhere"), "--json"]);
    expect(nokey.code).toBe(1);
    expect(onlyJson(nokey)).toMatchObject({
      ok: false,
      error: {
        code: "checkpoint_key_unusable",
        message: expect.stringContaining("no checkpoint key"),
      },
      dir,
    });

    const badkey = await writ([dir, "--checkpoint-key", "{}", "--json"]);
    expect(badkey.code).toBe(1);
    expect(onlyJson(badkey)).toMatchObject({
      ok: false,
      error: {
        code: "checkpoint_key_unusable",
        message: "--checkpoint-key holds no Ed25519 public key",
      },
    });
    for (const result of [none, nokey, badkey]) expectNoStack(result);
  });

  it("keeps the shapes of an intact and a broken log", async () => {
    const ok = await writ([dir, "--data-dir", root, "--json"]);
    expect(ok.code).toBe(0);
    expect(onlyJson(ok)).toMatchObject({ ok: true, entries: 30, lastSeq: 30, dir });
    await writeFile(join(dir, "checkpoints.jsonl"), "");
    const broken = await writ([dir, "--data-dir", root, "--json"]);
    expect(broken.code).toBe(1);
    expect(onlyJson(broken)).toMatchObject({ ok: false, firstBadSeq: 31, dir });
  });

  it("still refuses a bad command line with exit 2", async () => {
    const result = await writ([dir, dir, "--json"]);
    expect(result.code).toBe(2);
    expectNoStack(result);
  });
});

describe("writ audit verify reads a checkpoint key safely", () => {
  it.skipIf(process.platform === "win32")(
    "refuses a key beside the log that is a FIFO, rather than wait on it",
    async () => {
      // A data dir handed over for review may hold a FIFO where the key should be:
      // reading it would block until a writer came.
      const keyPath = join(root, "keys", "checkpoint.json");
      await unlink(keyPath);
      await promisify(execFile)("mkfifo", [keyPath]);
      const result = await writ([dir, "--data-dir", root, "--json"], 10_000);
      expect(result.code).toBe(1);
      expect(onlyJson(result)).toMatchObject({
        ok: false,
        error: { code: "checkpoint_key_unusable", message: `${keyPath} is not a regular file` },
      });
    },
  );

  it.skipIf(process.platform === "win32")(
    "takes a key named on the command line from a pipe, and stops reading one that never ends",
    async () => {
      // As `--checkpoint-key <(curl …)` gives it: a pipe, read to its end.
      const pipe = join(root, "key-pipe");
      await promisify(execFile)("mkfifo", [pipe]);
      const args = [dir, "--checkpoint-key", pipe, "--json"];
      onTestFinished(releaseWriters(pipe));
      const piped = writ(args);
      const writer = createWriteStream(pipe);
      writer.end(JSON.stringify(signer.publicJwk));
      const good = await piped;
      expect(good.code).toBe(0);
      expect(onlyJson(good)).toMatchObject({ ok: true, entries: 30, pinned_key: true });

      // A stream that stays open: a reader waiting for its end would wait forever.
      const endless = writ(args, 10_000);
      const flood = createWriteStream(pipe);
      flood.on("error", () => {});
      flood.write(" ".repeat(1 << 20));
      const result = await endless;
      flood.destroy();
      expect(result.code).toBe(1);
      expect(onlyJson(result)).toMatchObject({
        ok: false,
        error: {
          code: "checkpoint_key_unusable",
          message: `${pipe} is too large to be a key (over 65536 bytes)`,
        },
      });
    },
  );
});
