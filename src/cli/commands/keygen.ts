import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { generateKey, hashKey } from "../../adapters/key-identity.js";
import type { PrincipalKind } from "../../domain/principal.js";
import { type Command, UsageError } from "../command.js";

const KINDS: readonly PrincipalKind[] = ["agent", "reviewer", "auditor", "resource_server"];

/** The Prometheus scrape token (`metrics.token_sha256`): not a principal, it reads /metrics only. */
const METRICS_KIND = "metrics";

export const keygenCommand: Command = {
  path: ["keygen"],
  summary: "Generate a key for a principal and the hash to put in the configuration",
  help: `
Usage: writ keygen --kind <agent|reviewer|auditor|resource_server|metrics> [--json]

Prints a new random key (give it to the principal, once) and its SHA-256 (put
it in the configuration as key_sha256). writ stores only the hash. A metrics
token goes to the Prometheus scraper; its hash is metrics.token_sha256.
`,
  async run(args, io) {
    const { values } = parseArgs({
      args: [...args],
      options: { kind: { type: "string" }, json: { type: "boolean", default: false } },
      strict: true,
    });
    const kind = values.kind as PrincipalKind | typeof METRICS_KIND | undefined;
    if (kind === undefined || (kind !== METRICS_KIND && !KINDS.includes(kind))) {
      throw new UsageError(`--kind must be one of ${[...KINDS, METRICS_KIND].join(", ")}`);
    }
    const key =
      kind === METRICS_KIND
        ? `writ_metrics_${randomBytes(32).toString("base64url")}`
        : generateKey(kind);
    const keySha256 = hashKey(key);
    io.stdout(
      values.json
        ? `${JSON.stringify({ kind, key, key_sha256: keySha256 })}\n`
        : `key:        ${key}\nkey_sha256: ${keySha256}\n`,
    );
    return 0;
  },
};
