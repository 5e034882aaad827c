import { spawn } from "node:child_process";
import { mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openFileAuditLog } from "../../src/audit/file-audit-log.js";
import { acquireWriterLock } from "../../src/audit/writer-lock.js";

// One process writes one log directory. The lock must never let two writers in
// (a lock being created is not a stale one) and must not strand a log behind a
// pid that a new process now has (a restarted container's writ is pid 1 again).

const ROOT = resolve(import.meta.dirname, "../..");

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "writ-lock-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Field 22 of /proc/<pid>/stat: when the process started. */
async function startTimeOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

const outcome = (attempt: Promise<unknown>) =>
  attempt.then(
    () => "took the lock",
    (error: Error) => error.message,
  );

describe("the audit log's writer lock", () => {
  it("writes the lock whole: the pid and when the process started", async () => {
    const path = join(root, "writer.lock");
    const release = await acquireWriterLock(path);
    expect(await readFile(path, "utf8")).toBe(`${process.pid} ${await startTimeOf(process.pid)}\n`);
    // Nothing of its temporary file is left beside it.
    expect(await readdir(root)).toEqual(["writer.lock"]);
    await release();
    expect(await readdir(root)).toEqual([]);
  });

  it("never takes over a lock that another process is still creating", async () => {
    const path = join(root, "writer.lock");
    // A writer of another kind (or an older writ) has created the file and not yet written it.
    const first = await open(path, "wx", 0o600);
    const result = await outcome(acquireWriterLock(path));
    await first.close();
    expect(result).toMatch(/is not one writ wrote/);
    expect(await readFile(path, "utf8")).toBe("");
  });

  it("refuses a lock held by a live process, named by its pid and start time", async () => {
    const path = join(root, "writer.lock");
    const parent = process.ppid;
    await writeFile(path, `${parent} ${await startTimeOf(parent)}\n`);
    await expect(acquireWriterLock(path)).rejects.toMatchObject({
      code: "audit_unavailable",
      details: { locked_by: parent },
    });
  });

  it("takes over a lock whose pid now belongs to a process that started later", async () => {
    const path = join(root, "writer.lock");
    await writeFile(path, `${process.ppid} 1\n`);
    const release = await acquireWriterLock(path);
    await release();
  });

  it("takes over a lock left by an earlier process with this process's pid", async () => {
    for (const stale of [`${process.pid}\n`, `${process.pid} 1\n`]) {
      const dir = join(root, `audit-${stale.length}`);
      const first = await openFileAuditLog({ dir });
      await first.close();
      // The previous container's writ (the same pid, e.g. 1) was killed: its lock stays behind.
      await writeFile(join(dir, "writer.lock"), stale);
      const again = await openFileAuditLog({ dir });
      await again.close();
    }
  });

  it("refuses a second open in the same process", async () => {
    // Many rounds: an open whose link failed once gave up the claim of another
    // open that had just taken the lock, and a third then took it over too.
    for (let round = 0; round < 100; round++) {
      const path = join(root, `writer-${round}.lock`);
      const attempts = await Promise.all(
        Array.from({ length: 10 }, () => outcome(acquireWriterLock(path))),
      );
      expect(
        attempts.filter((a) => a === "took the lock"),
        `round ${round}`,
      ).toHaveLength(1);
    }
  });

  it("lets exactly one of several processes take over a stale lock", async () => {
    const path = join(root, "writer.lock");
    // pid 2^22 + 1 is above Linux's pid_max, so no process holds it.
    await writeFile(path, "4194305\n");
    const script = `
      const { acquireWriterLock } = await import(${JSON.stringify(join(ROOT, "dist/audit/writer-lock.js"))});
      try {
        const release = await acquireWriterLock(${JSON.stringify(path)});
        console.log("took");
        await new Promise((r) => setTimeout(r, 1500));
        await release();
      } catch (error) {
        console.log(error.details?.locked_by !== undefined ? "held" : "error: " + error.message);
      }`;
    const runs = Array.from(
      { length: 6 },
      () =>
        new Promise<string>((done, fail) => {
          const child = spawn(process.execPath, ["--input-type=module", "-e", script]);
          let out = "";
          child.stdout.on("data", (chunk: Buffer) => {
            out += chunk.toString();
          });
          child.on("error", fail);
          child.on("exit", () => done(out.trim()));
        }),
    );
    const results = await Promise.all(runs);
    expect(results.filter((r) => r === "took")).toHaveLength(1);
    expect(results.filter((r) => r === "held")).toHaveLength(5);
  }, 20_000);

  it("a release never removes a lock that another process took over", async () => {
    const path = join(root, "writer.lock");
    const release = await acquireWriterLock(path);
    const other = `${process.ppid} ${await startTimeOf(process.ppid)}\n`;
    await writeFile(path, other);
    await release();
    expect(await readFile(path, "utf8")).toBe(other);
  });
});
