import { rm } from "node:fs/promises";
import { expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import type { RequestStore } from "../../src/ports/store.js";
import { createRequest, keyOf, S3_READ } from "../support/api.js";
import { serveTestWrit, startTestWrit } from "../support/harness.js";

it("answers GET /v1/events?wait= long-polls at once with the current page when the server stops", async () => {
  // The real memory store, telling the test when a long-poll is parked in it.
  const memory = createMemoryStore();
  let parked = 0;
  const store: RequestStore = {
    ...memory,
    waitForEvents: (...args) => {
      parked++;
      return memory.waitForEvents(...args);
    },
  };
  const t = await startTestWrit({}, { store });
  // A grace period far below the wait, far above "at once": a poll that waited it
  // out would be reset, not answered.
  const server = await serveTestWrit(t, { shutdownGraceSeconds: 10 });
  try {
    await createRequest(t, S3_READ);
    const headers = { authorization: `Bearer ${keyOf(t, "dana")}` };
    // Nothing matches either filter yet, so both park.
    const polls = ["type=token.used&wait=60", "type=credential.issued&wait=60&after=1"].map(
      (query) =>
        fetch(`${server.url}/v1/events?${query}`, { headers }).then(async (res) => ({
          status: res.status,
          body: (await res.json()) as { items: unknown[]; last_id?: string },
        })),
    );
    await expect.poll(() => parked, { timeout: 5000 }).toBe(2);
    const started = performance.now();
    const stopped = server.stop();
    const answers = await Promise.all(polls);
    await stopped;
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.body.items).toEqual([]);
      expect(answer.body.last_id).toBeDefined();
    }
    expect(performance.now() - started).toBeLessThan(2000);
  } finally {
    await server.stop();
    await rm(t.dataDir, { recursive: true, force: true });
  }
});
