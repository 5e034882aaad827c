import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll } from "vitest";
import {
  type DevIdentities,
  devPrincipals,
  devSlackUserIds,
  loadOrCreateDevIdentities,
} from "../../src/config/dev-identities.js";
import { parseConfig } from "../../src/config/load.js";
import { type AssembleOptions, assembleWrit, type Writ } from "../../src/config/wire.js";
import type { Clock } from "../../src/ports/clock.js";
import { silentLogger } from "../../src/ports/logger.js";
import type { RequestStore } from "../../src/ports/store.js";
import { type RunningServer, serveWrit } from "../../src/server.js";

/** A clock tests move by hand: time never passes unless a test says so. */
export class ManualClock implements Clock {
  constructor(private ms = Date.parse("2026-01-15T09:00:00.000Z")) {}
  now(): number {
    return this.ms;
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export const REPO_POLICIES = resolve(import.meta.dirname, "../../policies");

export interface TestWrit {
  writ: Writ;
  clock: ManualClock;
  dataDir: string;
  ids: DevIdentities;
  /** Keys by principal id, e.g. `keys.alice`, `keys["report-agent"]`. */
  keys: Record<string, string>;
  /** Calls the app in-process with JSON and a bearer key. */
  call(
    method: string,
    path: string,
    options?: { key?: string | undefined; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
  close(): Promise<void>;
}

/**
 * A whole writ in-process on the embedded store (or `options.store`), with the
 * demo policies and identities, a manual clock and a temporary data dir.
 */
export async function startTestWrit(
  overrides: Record<string, unknown> = {},
  options: {
    store?: RequestStore;
    clock?: ManualClock;
    logger?: AssembleOptions["logger"];
    awsClients?: AssembleOptions["awsClients"];
    metrics?: AssembleOptions["metrics"];
    rateLimiter?: AssembleOptions["rateLimiter"];
    consumeRateLimiter?: AssembleOptions["consumeRateLimiter"];
    notificationState?: AssembleOptions["notificationState"];
  } = {},
): Promise<TestWrit> {
  const dataDir = await mkdtemp(join(tmpdir(), "writ-test-"));
  const clock = options.clock ?? new ManualClock();
  const config = parseConfig({
    data_dir: dataDir,
    policies: { dir: REPO_POLICIES, watch: false },
    ...overrides,
  });
  const { identities } = await loadOrCreateDevIdentities(dataDir);
  const writ = await assembleWrit(config, {
    clock,
    logger: options.logger ?? silentLogger,
    extraPrincipals: devPrincipals(identities),
    slackUserIds: devSlackUserIds(identities),
    ...(options.notificationState !== undefined
      ? { notificationState: options.notificationState }
      : {}),
    ...(options.store !== undefined ? { store: options.store } : {}),
    ...(options.awsClients !== undefined ? { awsClients: options.awsClients } : {}),
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    ...(options.rateLimiter !== undefined ? { rateLimiter: options.rateLimiter } : {}),
    ...(options.consumeRateLimiter !== undefined
      ? { consumeRateLimiter: options.consumeRateLimiter }
      : {}),
  });
  const keys: Record<string, string> = {};
  for (const list of [
    identities.agents,
    identities.reviewers,
    identities.auditors,
    identities.resource_servers,
  ]) {
    for (const p of list) keys[p.id] = p.key;
  }
  return {
    writ,
    clock,
    dataDir,
    ids: identities,
    keys,
    call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
      let body: string | undefined;
      if (options.body !== undefined) {
        body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
        headers["content-type"] ??= "application/json";
      }
      return Promise.resolve(
        writ.app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }),
      );
    },
    async close() {
      await writ.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Serves a test writ over HTTP on a free loopback port; `stop()` also closes the
 * writ. Tests of draining give it a longer grace period.
 */
export function serveTestWrit(
  t: TestWrit,
  options: { shutdownGraceSeconds?: number } = {},
): Promise<RunningServer> {
  return serveWrit(t.writ, {
    host: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    sweepIntervalSeconds: 3600,
    shutdownGraceSeconds: options.shutdownGraceSeconds ?? 1,
  });
}

/**
 * A test writ served over HTTP for the tests of the calling `describe`: started
 * before them, stopped after. Read `t` and `server` inside the tests.
 */
export function servedTestWrit(): { readonly t: TestWrit; readonly server: RunningServer } {
  let t: TestWrit | undefined;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    t = await startTestWrit();
    server = await serveTestWrit(t);
  });
  afterAll(async () => {
    await server?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the served writ is read before it started");
    return value;
  };
  return {
    get t() {
      return started(t);
    },
    get server() {
      return started(server);
    },
  };
}
