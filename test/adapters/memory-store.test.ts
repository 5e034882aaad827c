import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../../src/adapters/memory-store.js";
import { describeStoreContract, sampleEvent, sampleRequest } from "./store-contract.js";

describeStoreContract("memory", async () => createMemoryStore());

describe("memory store specifics", () => {
  it("drops the oldest events past maxEvents, keeping ids and after cursors valid", async () => {
    const store = createMemoryStore({ maxEvents: 3 });
    const request = sampleRequest();
    await store.create(request, []);
    const recorded = await store.append(
      Array.from({ length: 5 }, (_, n) => sampleEvent(request.id, "token.replay_blocked", { n })),
    );
    const kept = await store.events({ limit: 10 });
    expect(kept.map((e) => e.data.n)).toEqual([2, 3, 4]);
    expect(await store.events({ after: recorded[0]?.id as string, limit: 10 })).toEqual(kept);
    expect(await store.events({ after: recorded[3]?.id as string, limit: 10 })).toEqual([
      recorded[4],
    ]);
    await store.close();
  });

  it("refuses work once closed and reports not ready", async () => {
    const store = createMemoryStore();
    await store.close();
    expect(await store.ready()).toBe(false);
    await expect(store.get("req_x")).rejects.toThrow();
  });
});
