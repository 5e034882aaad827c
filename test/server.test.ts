import { readFile, rm } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../src/adapters/memory-store.js";
import { verifyLogFile } from "../src/audit/verify-log.js";
import type { RequestStore } from "../src/ports/store.js";
import { CUSTOMERS_EXPORT, createRequest, keyOf, S3_READ } from "./support/api.js";
import { serveTestWrit, startTestWrit } from "./support/harness.js";

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
    const server = await serveTestWrit(t, { shutdownGraceSeconds: 30 });
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

  it("finishes a state change in flight with its 2xx and its record, and refuses new calls", async () => {
    // The real memory store; its commits wait at a gate while `holding` is set,
    // so that a collect is certainly in flight when the stop begins.
    const memory = createMemoryStore();
    let holding = false;
    let held = 0;
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const store: RequestStore = {
      ...memory,
      commit: async (...args) => {
        if (holding) {
          held++;
          await gate;
        }
        return memory.commit(...args);
      },
    };
    const t = await startTestWrit({}, { store });
    const server = await serveTestWrit(t, { shutdownGraceSeconds: 30 });
    try {
      const { id } = await createRequest(t, S3_READ);
      const agent = { authorization: `Bearer ${keyOf(t, "report-agent")}` };
      holding = true;
      const collect = fetch(`${server.url}/v1/requests/${id}/credential`, {
        method: "POST",
        headers: agent,
      });
      await expect.poll(() => held, { timeout: 5000 }).toBe(1);

      const stopped = server.stop();
      // A new call once the stop has begun never reaches writ: the listener is closed.
      await expect(
        fetch(`${server.url}/v1/requests`, {
          method: "POST",
          headers: { ...agent, "content-type": "application/json" },
          body: JSON.stringify(S3_READ),
        }),
      ).rejects.toThrow();

      release();
      const answer = await collect;
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as { credential: { token: string } };
      const jti = JSON.parse(
        Buffer.from(body.credential.token.split(".")[1] as string, "base64url").toString(),
      ).jti;
      await stopped;

      // Its record is in the closed log, and nothing else was created.
      const logPath = t.writ.auditFile?.path as string;
      const entries = (await readFile(logPath, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { type: string; request_id: string; data: unknown });
      const issued = entries.filter((e) => e.type === "credential.issued");
      expect(issued).toHaveLength(1);
      expect(issued[0]).toMatchObject({ request_id: id, data: { credential_id: jti } });
      expect(entries.filter((e) => e.type === "request.created")).toHaveLength(1);
      expect(await verifyLogFile(logPath)).toMatchObject({ ok: true });
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    } finally {
      release();
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
