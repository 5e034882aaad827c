import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLogFile } from "../../src/audit/verify-log.js";
import { S3_READ } from "../support/api.js";
import { type RedisServer, shippedAofSettings } from "../support/redis.js";
import type { WritProcess } from "../support/writ-process.js";
import {
  allEvents,
  call,
  logFiles,
  loggedEventIds,
  type ReplicaPair,
  startReplicaPair,
} from "./http.js";

// Durability: two `writ serve` processes on one redis-server, whose process is
// killed with SIGKILL in the middle of a load and restarted on the same data.
// Run with `appendfsync always`, and with the AOF settings of
// infra/redis/redis.conf as shipped (`appendfsync everysec`): killing the
// redis-server process (not the host) loses no acknowledged write with either,
// since Redis write(2)s the AOF before it answers and the kernel keeps what was
// written. What each setting survives is in docs/operations.md, "Durability".

interface Acked {
  readonly kind: "create" | "collect" | "consume";
  readonly id: string;
  readonly token?: string;
}

const count = (events: { type: string }[], type: string) =>
  events.filter((e) => e.type === type).length;

describe.each([
  { setting: "appendfsync always", appendOnly: true, appendfsync: "always" },
  { setting: "the shipped infra/redis/redis.conf", appendOnly: "shipped", appendfsync: "everysec" },
] as const)(
  "durability with $setting: Redis killed with SIGKILL in the middle of a load",
  ({ appendOnly, appendfsync }) => {
    let pair: ReplicaPair;
    let dir: string;
    let redis: RedisServer;
    let a: WritProcess;
    let b: WritProcess;
    const pick = (n: number) => (n % 2 === 0 ? a : b);
    const key = (id: string) => pair.key(id);

    beforeAll(async () => {
      pair = await startReplicaPair("writ-redis-kill-", { appendOnly });
      ({ dir, redis, a, b } = pair);
    }, 60_000);

    afterAll(async () => {
      expect(await pair?.stop()).toEqual([0, 0]);
    }, 60_000);

    it(`runs Redis with appendfsync ${appendfsync}`, async () => {
      if (appendOnly === "shipped") {
        expect((await shippedAofSettings()).appendfsync).toBe(appendfsync);
      }
      const client = await createClient({ url: redis.url })
        .on("error", () => {})
        .connect();
      try {
        expect(await client.configGet("appendfsync")).toEqual({ appendfsync });
        expect(await client.configGet("appendonly")).toEqual({ appendonly: "yes" });
      } finally {
        await client.close();
      }
    });

    it("keeps every acknowledged event in the stream and in every log, and never issues a token twice", async () => {
      const acked: Acked[] = [];
      let failures = 0;
      let running = true;
      const flows = async (worker: number) => {
        for (let n = 0; running && n < 400; n++) {
          const first = pick(worker + n);
          const second = pick(worker + n + 1);
          const created = await call<{ id: string }>(
            first.url,
            "POST",
            "/v1/requests",
            key("report-agent"),
            S3_READ,
          );
          if (created.status !== 201) {
            failures++;
            continue;
          }
          const { id } = created.body;
          acked.push({ kind: "create", id });
          const collected = await call<{ credential: { token: string } }>(
            second.url,
            "POST",
            `/v1/requests/${id}/credential`,
            key("report-agent"),
          );
          if (collected.status !== 200) {
            failures++;
            continue;
          }
          const token = collected.body.credential.token;
          acked.push({ kind: "collect", id, token });
          const consumed = await call(first.url, "POST", "/v1/tokens/consume", key("billing-api"), {
            token,
          });
          if (consumed.status !== 200) {
            failures++;
            continue;
          }
          acked.push({ kind: "consume", id });
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, (_, w) => flows(w)));

      const poll = { timeout: 20_000, interval: 20 };
      await expect.poll(() => acked.length, poll).toBeGreaterThanOrEqual(90);
      await redis.stop("SIGKILL");
      const ackedAtKill = acked.length;
      await expect.poll(() => failures, poll).toBeGreaterThanOrEqual(30);
      await redis.restart();
      await expect.poll(() => acked.length, poll).toBeGreaterThanOrEqual(ackedAtKill + 90);
      running = false;
      await load;

      const stream = await allEvents(a.url, key("dana"));
      const byRequest = new Map<string, { type: string; data: Record<string, unknown> }[]>();
      for (const e of stream)
        byRequest.set(e.request_id, [...(byRequest.get(e.request_id) ?? []), e]);
      for (const ack of acked) {
        const events = byRequest.get(ack.id) ?? [];
        const expected = {
          create: "request.created",
          collect: "credential.issued",
          consume: "token.used",
        }[ack.kind];
        expect(count(events, expected), `${ack.kind} ${ack.id}`).toBe(1);
        if (ack.token !== undefined) {
          const jti = JSON.parse(
            Buffer.from(ack.token.split(".")[1] as string, "base64url").toString(),
          ).jti;
          expect(events.find((e) => e.type === "credential.issued")?.data.credential_id).toBe(jti);
        }
      }
      // No request anywhere in the stream has two credentials or two uses.
      for (const [id, events] of byRequest) {
        expect(count(events, "credential.issued"), id).toBeLessThanOrEqual(1);
        expect(count(events, "token.used"), id).toBeLessThanOrEqual(1);
      }
      const tokens = acked.filter((x) => x.token !== undefined).map((x) => x.token);
      expect(new Set(tokens).size).toBe(tokens.length);

      // Every replica's log holds the whole stream (each is a complete copy) and verifies.
      const streamIds = stream.map((e) => e.id);
      const files = await logFiles(dir);
      expect(files.length).toBeGreaterThanOrEqual(2);
      for (const file of files) {
        await expect
          .poll(
            async () => {
              const ids = await loggedEventIds(file);
              return streamIds.filter((id) => !ids.has(id)).length;
            },
            { timeout: 15_000, interval: 100 },
          )
          .toBe(0);
        const verified = await verifyLogFile(file);
        expect(verified, file).toMatchObject({ ok: true });
      }
    }, 60_000);
  },
);
