import { describe, expect, it } from "vitest";
import { isStreamId } from "../../src/adapters/redis/codec.js";
import { EVENT_ID, eventIdForm } from "../../src/domain/stream-id.js";

describe("event ids as writ hands them out", () => {
  it("knows the embedded store's counter and Redis's <ms>-<seq>", () => {
    for (const id of ["1", "17", String(Number.MAX_SAFE_INTEGER)]) {
      expect(eventIdForm(id), id).toBe("sequence");
      expect(EVENT_ID.test(id), id).toBe(true);
    }
    for (const id of ["1768467600000-3", "0-1", "18446744073709551615-18446744073709551615"]) {
      expect(eventIdForm(id), id).toBe("stream");
      expect(isStreamId(id), id).toBe(true);
      expect(EVENT_ID.test(id), id).toBe(true);
    }
  });

  it("refuses what only parses as one, or names no position writ could have given", () => {
    for (const id of [
      "",
      "0",
      "007",
      "-1",
      "1-",
      "1-2-3",
      "1768467600000-03",
      "01768467600000-3",
      "18446744073709551616-0",
      "0-18446744073709551616",
      String(Number.MAX_SAFE_INTEGER + 2),
      "1e3",
      " 1",
      "1\n",
    ]) {
      expect(eventIdForm(id), JSON.stringify(id)).toBeUndefined();
    }
  });
});
