import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../src/domain/errors.js";
import { EVENT_TYPES } from "../src/domain/events.js";
import { ERROR_STATUS } from "../src/http/error-status.js";

describe("docs/api.md", () => {
  it("lists every error code with the status the server uses", async () => {
    const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
    for (const code of ERROR_CODES) {
      expect(doc, code).toMatch(new RegExp(`\\| \`${code}\` \\| ${ERROR_STATUS[code]} \\|`));
    }
  });

  it("names every event type", async () => {
    const doc = await readFile(new URL("../docs/api.md", import.meta.url), "utf8");
    const documented = EVENT_TYPES.filter((t) => doc.includes(`\`${t}\``));
    const missing = EVENT_TYPES.filter((t) => !documented.includes(t));
    expect(missing).toEqual([]);
  });
});
