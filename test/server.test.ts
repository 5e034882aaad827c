import { rm } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../src/adapters/memory-store.js";
import { silentLogger } from "../src/ports/logger.js";
import type { RequestStore } from "../src/ports/store.js";
import { serveWrit } from "../src/server.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf } from "./support/api.js";
import { startTestWrit } from "./support/harness.js";

describe("graceful shutdown", () => {
  it("ends in-flight long-polls at once and drains, well inside the grace period", async () => {
    // The real memory store, telling the test when a long-poll is parked in it.
    const memory = createMemoryStore();
    let parked = 0;
    const store: RequestStore = {
      ...memory,
      waitForChange: (...args) => {
        parked++;
        return memory.waitForChange(...args);
      },
    };
    const t = await startTestWrit({}, { store });
    const server = await serveWrit(t.writ, {
      host: "127.0.0.1",
      port: 0,
      logger: silentLogger,
      sweepIntervalSeconds: 60,
      shutdownGraceSeconds: 30,
    });
    try {
      const { id } = await createRequest(t, CUSTOMERS_EXPORT);
      const headers = { authorization: `Bearer ${keyOf(t, "report-agent")}` };
      const polls = Array.from({ length: 5 }, () =>
        fetch(`${server.url}/v1/requests/${id}?wait=60`, { headers }),
      );
      await expect.poll(() => parked, { timeout: 5000 }).toBe(5);
      const started = performance.now();
      const stopped = server.stop();
      const answers = await Promise.all(polls);
      for (const res of answers) {
        expect(res.status).toBe(200);
        expect(((await res.json()) as { status: string }).status).toBe("pending");
      }
      await stopped;
      // Far below both the 60 s wait and the 30 s grace: nothing waited out a timer.
      expect(performance.now() - started).toBeLessThan(2000);
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    } finally {
      await server.stop();
      await rm(t.dataDir, { recursive: true, force: true });
    }
  });

  it("reports not ready once shutdown begins, so load balancers stop sending requests", async () => {
    const t = await startTestWrit();
    try {
      expect((await t.call("GET", "/readyz")).status).toBe(200);
      t.writ.beginShutdown();
      const res = await t.call("GET", "/readyz");
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: "not_ready" });
      // Health (liveness) stays fine: the process is alive, only draining.
      expect((await t.call("GET", "/healthz")).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});
