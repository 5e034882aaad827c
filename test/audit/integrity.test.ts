import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CheckpointSigner } from "../../src/audit/checkpoint-key.js";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { createAuditIntegrity } from "../../src/audit/integrity.js";
import { ManualClock } from "../support/harness.js";
import { testSigner } from "./checkpointed-log.js";
import { sampleEvents } from "./sample-events.js";

let root: string;
let dir: string;
let signer: CheckpointSigner;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-integrity-"));
  dir = join(root, "audit");
  signer = await testSigner(root);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("the live integrity check", () => {
  it("reports entries cut after the last checkpoint, which its writer knows it fsynced", async () => {
    // One checkpoint at open (seq 0); the ten entries after it are covered by none.
    const log = await openFileAuditLog({
      dir,
      checkpoints: { signer, everyEntries: 100, schedule: () => () => {} },
    });
    try {
      await log.append(sampleEvents(1, 10));
      const integrity = createAuditIntegrity({ log, signer, clock: new ManualClock() });
      expect(await integrity.verifyNow()).toMatchObject({ ok: true, entries: 10 });

      const lines = (await readFile(log.path, "utf8")).split("\n");
      await writeFile(
        log.path,
        lines
          .slice(0, 5)
          .map((l) => `${l}\n`)
          .join(""),
      );
      expect(await integrity.verifyNow()).toMatchObject({
        ok: false,
        entries: 5,
        firstBadSeq: 6,
        reason: "the log ends at seq 5 but its writer has fsynced up to seq 10: its tail was cut",
      });
    } finally {
      await log.close();
    }
  });
});
