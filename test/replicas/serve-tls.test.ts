import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../src/cli/command.js";
import { runCli } from "../../src/cli/main.js";
import { APPROVAL_FLOW_EVENTS, CUSTOMERS_EXPORT } from "../support/api.js";
import { createProductionSetup, type ProductionSetup } from "../support/production-config.js";
import { type RedisServer, startRedisServer } from "../support/redis.js";
import { createTestPki, type TestPki } from "../support/tls.js";
import { startWritProcess, type WritProcess } from "../support/writ-process.js";
import { approvalFlow } from "./http.js";

// `writ serve` on a redis-server that speaks TLS only and requires a client
// certificate, with a throwaway CA made by openssl for this run.

let dir: string;
let pki: TestPki;
let redis: RedisServer;
let setup: ProductionSetup;
let writ: WritProcess | undefined;
const key = (id: string) => setup.key(id);

const tlsConfig = (caFile: string, extra: Record<string, unknown> = {}) => ({
  redis: {
    url: redis.url,
    tls: {
      ca_file: caFile,
      cert_file: pki.clientCertFile,
      key_file: pki.clientKeyFile,
    },
    ...extra,
  },
});

/** `writ serve` in this process: a refusal returns before anything listens. */
async function serveRefusal(configPath: string) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(["serve", "--config", configPath], {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: {},
    stderrIsTty: false,
  });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "writ-tls-"));
  const pkiDir = join(dir, "pki");
  await mkdir(pkiDir, { mode: 0o700 });
  pki = await createTestPki(pkiDir);
  redis = await startRedisServer({
    tls: {
      certFile: pki.serverCertFile,
      keyFile: pki.serverKeyFile,
      caFile: pki.caFile,
      authClients: "yes",
    },
  });
  setup = await createProductionSetup(join(dir, "deployment"));
}, 60_000);

afterAll(async () => {
  const code = await writ?.stop();
  await redis?.dispose();
  await rm(dir, { recursive: true, force: true });
  expect(code ?? 0).toBe(0);
}, 30_000);

describe("writ serve on Redis over TLS", () => {
  it("serves a whole request, approval, collect and consume over mutual TLS", async () => {
    expect(redis.url).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/);
    writ = await startWritProcess([
      "serve",
      "--config",
      await setup.writeConfig("a", tlsConfig(pki.caFile)),
      "--quiet",
    ]);
    const { events } = await approvalFlow(writ.url, key, CUSTOMERS_EXPORT);
    expect(events.map((e) => e.type)).toEqual(APPROVAL_FLOW_EVENTS);
  });

  it("refuses to start when Redis's certificate is not signed by the configured CA", async () => {
    const configPath = await setup.writeConfig(
      "wrong-ca",
      tlsConfig(pki.otherCaFile, { connect_timeout_seconds: 1 }),
    );
    const { code, stdout, stderr } = await serveRefusal(configPath);
    expect(code).toBe(EXIT.failed);
    expect(stdout).toBe("");
    expect(stderr).toMatch(
      /redis\.tls\.ca_file: cannot reach Redis at rediss:\/\/127\.0\.0\.1:\d+ within 1 s: its TLS certificate does not verify \([A-Z_]+\), so writ refuses the connection\.\n\s+Fix: point redis\.tls\.ca_file at the CA that signed Redis's certificate/,
    );
  });

  it("refuses to start when the certificate does not name the host writ connects to", async () => {
    const configPath = await setup.writeConfig(
      "wrong-name",
      tlsConfig(pki.caFile, {
        connect_timeout_seconds: 1,
        tls: {
          ca_file: pki.caFile,
          cert_file: pki.clientCertFile,
          key_file: pki.clientKeyFile,
          servername: "redis.elsewhere.example",
        },
      }),
    );
    const { code, stderr } = await serveRefusal(configPath);
    expect(code).toBe(EXIT.failed);
    expect(stderr).toMatch(
      /its TLS certificate does not verify \(ERR_TLS_CERT_ALTNAME_INVALID\).*\n\s+Fix: connect by a name the certificate holds, or set redis\.tls\.servername/,
    );
  });
});
