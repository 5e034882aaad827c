import { describe, expect, it } from "vitest";
import type { RateLimit, RateLimiter } from "../../src/ports/rate-limiter.js";

/** What a contract run needs: a limiter with these limits, over a fresh state. */
export type MakeLimiter = (limitFor: (subject: string) => RateLimit | undefined) => RateLimiter;

/**
 * The behaviour every rate limiter adapter shares. The limits are slow (a few
 * per minute) so that no test depends on time passing while it runs.
 */
export function rateLimiterContract(name: string, make: MakeLimiter) {
  describe(`${name}: rate limiter contract`, () => {
    it("allows a burst, then refuses with the wait until the next slot", async () => {
      const limiter = make(() => ({ perMinute: 2, burst: 3 }));
      for (let i = 0; i < 3; i++) expect(await limiter.take("agent-a")).toEqual({ allowed: true });
      const refused = await limiter.take("agent-a");
      expect(refused.allowed).toBe(false);
      if (refused.allowed) return;
      // Two a minute: the next slot opens about 30 s after the burst.
      expect(refused.retryAfterMs).toBeGreaterThan(25_000);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(30_000);
    });

    it("keeps subjects apart", async () => {
      const limiter = make(() => ({ perMinute: 1, burst: 1 }));
      expect((await limiter.take("agent-a")).allowed).toBe(true);
      expect((await limiter.take("agent-a")).allowed).toBe(false);
      expect((await limiter.take("agent-b")).allowed).toBe(true);
    });

    it("does not count refused attempts: retrying does not push the next slot away", async () => {
      const limiter = make(() => ({ perMinute: 1, burst: 1 }));
      await limiter.take("agent-a");
      const first = await limiter.take("agent-a");
      for (let i = 0; i < 20; i++) await limiter.take("agent-a");
      const later = await limiter.take("agent-a");
      expect(first.allowed || later.allowed).toBe(false);
      if (first.allowed || later.allowed) return;
      expect(later.retryAfterMs).toBeLessThanOrEqual(first.retryAfterMs);
    });

    it("lets unlimited subjects through and applies per-subject limits", async () => {
      const limiter = make((subject) =>
        subject === "free" ? undefined : { perMinute: 1, burst: subject === "big" ? 5 : 1 },
      );
      for (let i = 0; i < 50; i++) expect((await limiter.take("free")).allowed).toBe(true);
      let big = 0;
      for (let i = 0; i < 8; i++) if ((await limiter.take("big")).allowed) big++;
      expect(big).toBe(5);
    });

    it("counts concurrent attempts exactly: a burst of 10 among 100 at once", async () => {
      const limiter = make(() => ({ perMinute: 1, burst: 10 }));
      const results = await Promise.all(Array.from({ length: 100 }, () => limiter.take("agent-c")));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
    });

    it("takes hostile subjects as opaque names", async () => {
      const limiter = make(() => ({ perMinute: 1, burst: 1 }));
      for (const subject of ["{writ}:req:x", "a\nb", "", "x".repeat(10_000), "ünïcødé"]) {
        expect((await limiter.take(subject)).allowed, subject.slice(0, 20)).toBe(true);
        expect((await limiter.take(subject)).allowed, subject.slice(0, 20)).toBe(false);
      }
    });

    it("rejects an invalid limit as a programming error", async () => {
      const limiter = make(() => ({ perMinute: 0, burst: 1 }));
      await expect(limiter.take("agent-a")).rejects.toBeInstanceOf(TypeError);
    });
  });
}
