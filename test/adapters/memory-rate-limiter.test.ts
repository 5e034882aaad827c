import { describe, expect, it } from "vitest";
import { gcraStep } from "../../src/adapters/gcra.js";
import { createMemoryRateLimiter } from "../../src/adapters/memory-rate-limiter.js";
import { ManualClock } from "../support/harness.js";
import { rateLimiterContract } from "./rate-limiter-contract.js";

rateLimiterContract("memory", (limitFor) =>
  createMemoryRateLimiter({ limitFor, clock: new ManualClock() }),
);

describe("memory rate limiter over time", () => {
  it("refills at the sustained rate on the injected clock", async () => {
    const clock = new ManualClock();
    const limiter = createMemoryRateLimiter({
      limitFor: () => ({ perMinute: 60, burst: 2 }),
      clock,
    });
    expect((await limiter.take("a")).allowed).toBe(true);
    expect((await limiter.take("a")).allowed).toBe(true);
    expect(await limiter.take("a")).toEqual({ allowed: false, retryAfterMs: 1000 });
    clock.advance(0.5);
    expect(await limiter.take("a")).toEqual({ allowed: false, retryAfterMs: 500 });
    clock.advance(0.5);
    expect((await limiter.take("a")).allowed).toBe(true);
    expect((await limiter.take("a")).allowed).toBe(false);
    // After a long quiet period the whole burst is available again, no more.
    clock.advance(3600);
    expect((await limiter.take("a")).allowed).toBe(true);
    expect((await limiter.take("a")).allowed).toBe(true);
    expect((await limiter.take("a")).allowed).toBe(false);
  });

  it("forgets subjects whose slot has passed, so memory stays bounded", async () => {
    const clock = new ManualClock();
    const limiter = createMemoryRateLimiter({
      limitFor: () => ({ perMinute: 60_000, burst: 1 }),
      clock,
    });
    for (let i = 0; i < 10_100; i++) await limiter.take(`agent-${i}`);
    clock.advance(1);
    // The prune runs on the next take; what it dropped decides nothing differently.
    expect((await limiter.take("agent-0")).allowed).toBe(true);
  });
});

describe("GCRA step", () => {
  it("allows `burst` at once and then one per interval", () => {
    const limit = { perMinute: 6, burst: 3 };
    let tat: number | undefined;
    const decisions: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const step = gcraStep(tat, 0, limit);
      decisions.push(step.decision.allowed);
      tat = step.tatMs;
    }
    expect(decisions).toEqual([true, true, true, false]);
    expect(gcraStep(tat, 0, limit).decision).toEqual({ allowed: false, retryAfterMs: 10_000 });
    expect(gcraStep(tat, 10_000, limit).decision).toEqual({ allowed: true });
  });
});
