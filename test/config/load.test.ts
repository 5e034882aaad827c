import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfigFile } from "../../src/config/load.js";

/** Fails if any 8 characters of `secret` appear in `message`. */
function expectNoPieceOf(secret: string, message: string): void {
  for (let i = 0; i + 8 <= secret.length; i++) {
    expect(message, "quotes the secret").not.toContain(secret.slice(i, i + 8));
  }
}

describe("loadConfigFile: a file that does not parse", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "writ-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function loadError(name: string, text: string): Promise<ConfigError> {
    const path = join(dir, name);
    await writeFile(path, text);
    const error = await loadConfigFile(path).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }

  it("names the YAML error's line and column, never the line holding a secret", async () => {
    const secret = "8f3a9c2e7b1d4f6a0e5c9b2d7e1f3a4c";
    const { message } = await loadError(
      "writ.yaml",
      `slack:\n  bot_token: xoxb-1-2-abc\n  signing_secret: ${secret}: oops\n`,
    );
    expectNoPieceOf(secret, message);
    expect(message).toMatch(/writ\.yaml is not valid YAML: \w+ at line 3, column \d+/);
  });

  it("prints no YAML warning quoting the line it is about", async () => {
    const secret = "0e5c9b2d7e1f3a4c8f3a9c2e7b1d4f6a";
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on("warning", onWarning);
    try {
      const path = join(dir, "writ.yaml");
      // An unknown tag is only a warning to the parser, which prints it with the line.
      await writeFile(path, `slack:\n  signing_secret: !vault ${secret}\n`);
      await loadConfigFile(path).catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expectNoPieceOf(secret, warnings.join("\n"));
  });

  it("says a JSON file is not valid JSON, without quoting it", async () => {
    const token = "xoxb-2048230517-7391846205-Q3fLk9PzR8vWmN2tYx6HcB1d";
    const { message } = await loadError(
      "writ.json",
      `{\n  "slack": {\n    "bot_token": ${token}\n  }\n}\n`,
    );
    expectNoPieceOf(token, message);
    expect(message).toMatch(/writ\.json is not valid JSON/);
  });
});
