import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  entryHash,
  entryLineFault,
  GENESIS_HASH,
  readLogEntry,
  serializeEntry,
  toEntry,
  toEntryLine,
} from "../../src/audit/log-entry.js";
import type { RecordedEvent } from "../../src/domain/events.js";
import type { JsonObject } from "../../src/domain/json.js";
import { sampleEvent } from "./sample-events.js";

const event: RecordedEvent = {
  id: "1700000000000-0",
  type: "request.created",
  requestId: "req_1",
  actor: { kind: "agent", id: "a1" },
  time: 1_700_000_000_000,
  data: { b: [true, null], a: 1 },
};

describe("log entries", () => {
  it("uses 64 zero hex digits as the genesis hash", () => {
    expect(GENESIS_HASH).toBe("0".repeat(64));
  });

  it("hashes the canonical JSON of every field but hash", () => {
    const entry = toEntry(event, 1, GENESIS_HASH);
    const canonical =
      '{"actor":{"id":"a1","kind":"agent"},"data":{"a":1,"b":[true,null]},' +
      `"event_id":"1700000000000-0","prev":"${GENESIS_HASH}","request_id":"req_1",` +
      '"seq":1,"time":"2023-11-14T22:13:20.000Z","type":"request.created"}';
    expect(entry).toEqual({
      seq: 1,
      time: "2023-11-14T22:13:20.000Z",
      type: "request.created",
      request_id: "req_1",
      actor: { kind: "agent", id: "a1" },
      data: { a: 1, b: [true, null] },
      event_id: "1700000000000-0",
      prev: GENESIS_HASH,
      hash: createHash("sha256").update(canonical).digest("hex"),
    });
    expect(entryHash(entry)).toBe(entry.hash);
  });

  it("records only the actor's kind and id", () => {
    const actor = { kind: "agent", id: "a1", owner: "alice" } as RecordedEvent["actor"];
    expect(toEntry({ ...event, actor }, 1, GENESIS_HASH).actor).toEqual({
      kind: "agent",
      id: "a1",
    });
  });

  it("changes the hash when any field changes", () => {
    const entry = toEntry(event, 1, GENESIS_HASH);
    const variants = [
      { ...entry, seq: 2 },
      { ...entry, time: "2023-11-14T22:13:20.001Z" },
      { ...entry, type: "request.denied" },
      { ...entry, request_id: "req_2" },
      { ...entry, actor: { kind: "agent", id: "a2" } },
      { ...entry, data: { a: 2, b: [true, null] } },
      { ...entry, event_id: "1700000000000-1" },
      { ...entry, prev: "1".repeat(64) },
    ];
    for (const variant of variants) expect(entryHash(variant)).not.toBe(entry.hash);
  });

  it("writes a line with seq first and hash last that parses back to the entry", () => {
    const entry = toEntry(sampleEvent(3), 3, "a".repeat(64));
    const line = serializeEntry(entry);
    expect(Object.keys(JSON.parse(line))).toEqual([
      "seq",
      "time",
      "type",
      "request_id",
      "actor",
      "data",
      "event_id",
      "prev",
      "hash",
    ]);
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual(entry);
    expect(readLogEntry(JSON.parse(line))).toEqual(entry);
  });

  it("writes the same line through toEntryLine, from the canonical form the hash covers", () => {
    const unsorted = { ...sampleEvent(4), data: { z: 1, a: [1, "x\n"], m: { b: true, a: null } } };
    const { entry, line } = toEntryLine(unsorted, 4, "b".repeat(64));
    expect(entry).toEqual(toEntry(unsorted, 4, "b".repeat(64)));
    expect(line).toBe(serializeEntry(entry));
    expect(JSON.parse(line)).toEqual(entry);
    expect(entryHash(JSON.parse(line))).toBe(entry.hash);
    // Values are written canonically: data's keys sorted, at every depth.
    expect(line).toContain('"data":{"a":[1,"x\\n"],"m":{"a":null,"b":true},"z":1}');
  });

  it("accepts only the exact line it writes for an entry, once the hash holds", () => {
    const entry = toEntry(sampleEvent(5), 5, "c".repeat(64));
    const line = serializeEntry(entry);
    expect(entryLineFault(entry, line)).toBeUndefined();
    expect(entryLineFault({ ...entry, type: "request.denied" }, line)).toBe("hash mismatch");
    const sameValue = [
      line.replace('"seq":5', '"seq":5.0'),
      line.replace('"seq":5', '"seq":5, "seq":5'),
      line.replace('"agent"', '"\\u0061gent"'),
      ` ${line}`,
      JSON.stringify(JSON.parse(line), null, 1),
    ];
    for (const variant of sameValue) {
      expect(JSON.parse(variant)).toEqual(entry);
      expect(entryLineFault(entry, variant)).toBe("entry is not written in canonical form");
    }
  });

  it("refuses events it cannot record faithfully", () => {
    expect(() => toEntry(event, 0, GENESIS_HASH)).toThrow(TypeError);
    expect(() => toEntry(event, 1.5, GENESIS_HASH)).toThrow(TypeError);
    expect(() => toEntry(event, 1, "not a hash")).toThrow(TypeError);
    expect(() => toEntry({ ...event, time: Number.NaN }, 1, GENESIS_HASH)).toThrow(TypeError);
    expect(() => toEntry({ ...event, data: { ratio: Number.NaN } }, 1, GENESIS_HASH)).toThrow(
      TypeError,
    );
    const withUndefined = { note: undefined } as unknown as JsonObject;
    expect(() => toEntry({ ...event, data: withUndefined }, 1, GENESIS_HASH)).toThrow(TypeError);
  });

  it("reads only well-shaped entries", () => {
    const entry = toEntry(event, 1, GENESIS_HASH);
    const { data: _data, ...withoutData } = entry;
    expect(readLogEntry(entry)).toEqual(entry);
    expect(readLogEntry([])).toBe("entry is not a JSON object");
    expect(readLogEntry(withoutData)).toBe("entry has missing or unknown fields");
    expect(readLogEntry({ ...entry, extra: 1 })).toBe("entry has missing or unknown fields");
    expect(readLogEntry({ ...entry, seq: "1" })).toBe("bad seq");
    expect(readLogEntry({ ...entry, seq: 0 })).toBe("bad seq");
    expect(readLogEntry({ ...entry, actor: { kind: "agent" } })).toBe("bad actor");
    expect(readLogEntry({ ...entry, data: [] })).toBe("bad data");
    expect(readLogEntry({ ...entry, hash: "abc" })).toBe("bad hash");
  });
});
