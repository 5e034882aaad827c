import { describe, expect, it } from "vitest";
import { createMemoryDeniedSessions } from "../../src/adapters/memory-denied-sessions.js";

// The ledger of denied sessions in one process's memory (the memory store):
// the same claims as the Redis ledger, so one end of a session that fails
// never takes away a deny another end of it recorded.

const T = Date.parse("2026-11-22T10:00:00Z");
const session = (grant: string) => ({ grant, issuedAt: T, endsAt: T + 900_000 });

describe("the memory ledger of denied sessions", () => {
  it("keeps a session while another end of it still claims it", async () => {
    const ledger = createMemoryDeniedSessions();
    expect(ledger.shared).toBe(false);
    const completing = await ledger.add("role", session("g"), T + 960_000, T);
    const expiring = await ledger.add("role", session("g"), T + 960_000, T);
    expect(completing).not.toBe(expiring);
    await ledger.withdraw("role", session("g"), completing);
    await ledger.withdraw("role", session("g"), completing);
    await ledger.withdraw("role", session("g"), "someone-else");
    expect(await ledger.live("role", T)).toEqual([session("g")]);
    await ledger.withdraw("role", session("g"), expiring);
    expect(await ledger.live("role", T)).toEqual([]);
    expect(await ledger.scopes(T)).toEqual([]);
  });

  it("keeps the later retention when a session is recorded twice", async () => {
    const ledger = createMemoryDeniedSessions();
    await ledger.add("role", session("g"), T + 960_000, T);
    await ledger.add("role", session("g"), T + 500_000, T);
    expect(await ledger.live("role", T + 960_000)).toEqual([session("g")]);
    expect(await ledger.live("role", T + 960_001)).toEqual([]);
  });
});
