import { describe, expect, it } from "vitest";
import { utcTimeMs } from "../../src/domain/utc-time.js";

describe("utcTimeMs", () => {
  it("reads a UTC time to the minute, second or fraction", () => {
    expect(utcTimeMs("2026-01-15T09:00Z")).toBe(Date.UTC(2026, 0, 15, 9));
    expect(utcTimeMs("2026-01-15T23:59:59Z")).toBe(Date.UTC(2026, 0, 15, 23, 59, 59));
    expect(utcTimeMs("2026-01-15T09:00:00.250Z")).toBe(Date.UTC(2026, 0, 15, 9, 0, 0, 250));
    expect(utcTimeMs("2024-02-29T00:00Z")).toBe(Date.UTC(2024, 1, 29));
  });

  it("names no instant for a day or hour that does not exist, or for other text", () => {
    for (const text of [
      "2026-02-29T00:00Z",
      "2026-02-30T00:00Z",
      "2026-04-31T10:00:00Z",
      "2026-01-15T24:00Z",
      "2026-01-15T10:60Z",
      "2026-13-01T00:00Z",
      "2026-01-15T09:00",
      "2026-01-15",
      "2026-01-15T09:00+01:00",
      "yesterday",
    ]) {
      expect(utcTimeMs(text), text).toBeUndefined();
    }
  });
});
