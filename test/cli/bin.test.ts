import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BIN, ROOT } from "../support/cli.js";

/** Runs the built CLI with its stdout read by nobody: the reader is gone before it writes. */
function withClosedStdout(
  args: readonly string[],
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(globalThis.process.execPath, [BIN, ...args], { cwd: ROOT });
  child.stdout.destroy();
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stderr })));
}

describe("writ with its output piped into a reader that has gone (`writ … | head -1`)", () => {
  it("stops quietly with exit 1: no stack trace", async () => {
    for (const args of [["keygen", "--kind", "agent"], ["--help"], ["audit", "verify", "--help"]]) {
      const result = await withClosedStdout(args);
      expect(result.stderr, args.join(" ")).toBe("");
      expect(result.code, args.join(" ")).toBe(1);
    }
  });
});
