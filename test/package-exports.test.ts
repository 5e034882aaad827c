import { execFile } from "node:child_process";
import { access, readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);

// These read the built package (dist/), which `npm test` builds before running.
describe("the package's public entry points", () => {
  it("maps each export to built JavaScript and types", async () => {
    const pkg = JSON.parse(await readFile(resolve(root, "package.json"), "utf8")) as {
      exports: Record<string, string | { types: string; import: string }>;
      bin: Record<string, string>;
    };
    expect(Object.keys(pkg.exports)).toEqual(
      expect.arrayContaining(["./client", "./verify", "./verify/hono"]),
    );
    for (const target of Object.values(pkg.exports)) {
      const files = typeof target === "string" ? [target] : [target.types, target.import];
      for (const file of files) await access(resolve(root, file));
    }
    expect(pkg.bin.writ).toBe("dist/cli/bin.js");
  });

  it("builds the writ command as an executable with its shebang, as npx runs it", async () => {
    // `npm install && npx writ dev` runs dist/cli/bin.js itself, not through node:
    // a build that leaves it without its execute bit breaks the quick start.
    const { stdout } = await run(resolve(root, "dist/cli/bin.js"), ["--version"], { cwd: root });
    expect(stdout).toMatch(/^writ \d+\.\d+\.\d+/);
  });

  it("imports by package name from plain Node", async () => {
    const script = `
      const client = await import("writ/client");
      const verify = await import("writ/verify");
      const hono = await import("writ/verify/hono");
      console.log(JSON.stringify({
        client: typeof client.createWritClient, error: typeof client.WritApiError,
        verifier: typeof verify.createWritVerifier, verifyError: typeof verify.WritVerifyError,
        middleware: typeof hono.writAuth,
      }));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
    });
    expect(JSON.parse(stdout)).toMatchObject({
      client: "function",
      error: "function",
      verifier: "function",
      verifyError: "function",
      middleware: "function",
    });
  });

  it("keeps deep imports private", async () => {
    const attempt = run(
      process.execPath,
      ["--input-type=module", "-e", `await import("writ/dist/config/wire.js")`],
      { cwd: root },
    );
    await expect(attempt).rejects.toMatchObject({
      stderr: expect.stringMatching(/ERR_PACKAGE_PATH_NOT_EXPORTED/),
    });
  });
});
