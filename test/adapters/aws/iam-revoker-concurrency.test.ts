import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createIamRevoker, type IamRevoker } from "../../../src/adapters/aws/iam-revoker.js";
import { parseRevocationPolicy } from "../../../src/adapters/aws/revocation-policy.js";
import { REVOCATION_RECHECK_DELAYS_MS } from "../../../src/adapters/aws/revocation-recheck.js";
import { createRedisDeniedSessions } from "../../../src/adapters/redis/denied-sessions.js";
import { createRedisSharedLock } from "../../../src/adapters/redis/shared-lock.js";
import type { DeniedSessionLedger } from "../../../src/ports/denied-sessions.js";
import type { SharedLock } from "../../../src/ports/shared-lock.js";
import type { Timer } from "../../../src/ports/timer.js";
import { issuedAwsRequest } from "../../support/aws-requests.js";
import { capturingLogger } from "../../support/captured-log.js";
import { type FakeAws, startFakeAws, TEST_SECRET_ACCESS_KEY } from "../../support/fake-aws.js";
import { ManualClock } from "../../support/harness.js";
import { type RedisServer, startRedisServer } from "../../support/redis.js";
import { within } from "../../support/wait.js";

// Several writ processes (replicas, or the workers of one `writ serve`) ending
// sessions of one role at once. IAM has no conditional write and its reads are
// eventually consistent, so each process re-checks the denies it wrote until
// their sessions end and writes back any that a concurrent write lost; with
// Redis, a shared lock makes the processes take turns in the first place.

const POLICY = "writ-revocations";
const clock = new ManualClock();
const { logger, lines: logLines } = capturingLogger();
let fake: FakeAws;
let redis: RedisServer;
let redisClient: ReturnType<typeof createClient>;
const revokers: IamRevoker[] = [];

/**
 * A timer whose waits end only when the test lets time pass: `elapse` moves
 * the shared clock and ends every wait; `nextSleep` resolves at the next wait
 * begun, i.e. once the background loop has done its work and sleeps again.
 */
function steppedTimer() {
  const waits = new Set<{ ms: number; resolve: () => void }>();
  const sleepers: ((ms: number) => void)[] = [];
  const timer: Timer = {
    sleep(ms, signal) {
      return new Promise<void>((resolve, reject) => {
        const wait = { ms, resolve };
        waits.add(wait);
        for (const sleeper of sleepers.splice(0)) sleeper(ms);
        signal?.addEventListener(
          "abort",
          () => {
            waits.delete(wait);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    },
  };
  return {
    timer,
    pending: () => [...waits].map((w) => w.ms),
    nextSleep: () => new Promise<number>((resolve) => sleepers.push(resolve)),
    elapse(ms: number) {
      clock.advance(ms / 1000);
      for (const wait of [...waits]) {
        waits.delete(wait);
        wait.resolve();
      }
    },
  };
}

function replica(options: { timer?: Timer; lock?: SharedLock; ledger?: DeniedSessionLedger } = {}) {
  const revoker = createIamRevoker({
    ...fake.clients({ maxAttempts: 1 }),
    policyName: POLICY,
    clock,
    logger,
    ...(options.timer !== undefined ? { timer: options.timer } : {}),
    ...(options.lock !== undefined ? { lock: options.lock } : {}),
    ...(options.ledger !== undefined ? { ledger: options.ledger } : {}),
  });
  revokers.push(revoker);
  return revoker;
}

/** A replica whose first PutRolePolicy waits on the wire until released. */
function slowReplica(options: { timer?: Timer; lock?: SharedLock } = {}) {
  const { iam, sts } = fake.clients({ maxAttempts: 1 });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached!: () => void;
  const putReached = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let held = false;
  iam.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "PutRolePolicyCommand" && !held) {
        held = true;
        reached();
        await released;
      }
      return next(args);
    },
    { step: "initialize", name: "holdFirstPut" },
  );
  const revoker = createIamRevoker({
    iam,
    sts,
    policyName: POLICY,
    clock,
    logger,
    ...(options.timer !== undefined ? { timer: options.timer } : {}),
    ...(options.lock !== undefined ? { lock: options.lock } : {}),
  });
  revokers.push(revoker);
  return { revoker, putReached, release };
}

/** An issued request whose 15-minute session runs on role `roleName`. */
function issued(roleName: string) {
  return issuedAwsRequest({
    now: clock.now(),
    roleArn: `arn:aws:iam::111122223333:role/${roleName}`,
    sessionSeconds: 900,
  });
}

const stored = (roleName: string) => parseRevocationPolicy(fake.rolePolicy(roleName, POLICY));

const callsFrom = (from: number, action: string, roleName: string) =>
  fake.calls.slice(from).filter((c) => c.action === action && c.params.RoleName === roleName);

/** Lets pending callbacks run: the loops' steps that need no I/O. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

let lockPrefix = 0;
function sharedLock(timer?: Timer): SharedLock {
  return createRedisSharedLock({
    client: redisClient,
    prefix: `{writ-aws-${lockPrefix}}`,
    retryMs: 10,
    logger,
    ...(timer !== undefined ? { timer } : {}),
  });
}

/** The ledger of denied sessions on the shared Redis, as one more process would open it. */
function sharedLedger(): DeniedSessionLedger {
  return createRedisDeniedSessions({
    client: redisClient,
    name: "aws-denies",
    prefix: `{writ-aws-${lockPrefix}}`,
  });
}

beforeAll(async () => {
  fake = await startFakeAws({ now: () => clock.now() });
  redis = await startRedisServer();
  redisClient = createClient({ url: redis.url });
  await redisClient.connect();
}, 20_000);

afterEach(() => {
  for (const revoker of revokers.splice(0)) revoker.close();
  lockPrefix++;
});

afterAll(async () => {
  await redisClient?.close();
  await redis?.dispose();
  await fake?.close();
});

describe("IAM revocation across processes", () => {
  it("writes back a deny another replica's concurrent write erased, and logs it", async () => {
    const timerA = steppedTimer();
    const timerB = steppedTimer();
    const slow = slowReplica({ timer: timerA.timer });
    const replicaB = replica({ timer: timerB.timer });
    const a = issued("raced");
    const b = issued("raced");
    // A reads the (empty) policy and is about to write [gA].
    const aDone = slow.revoker.revoke(a.request, "completed");
    await slow.putReached;
    // B reads, writes [gB] and reports it denied: writ records credential.revoked.
    expect(await replicaB.revoke(b.request, "completed")).toMatchObject({
      source: "aws-iam",
      details: { grant_id: b.grant, deny: "grant" },
    });
    // A's write, based on its earlier read, lands after: IAM takes the last write.
    slow.release();
    await aDone;
    expect(stored("raced").grants).toEqual([a.grant]);

    // B's first re-check, a few seconds later, finds gB gone and writes it back.
    const from = fake.calls.length;
    const slept = timerB.nextSleep();
    timerB.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await within(slept, "B's re-check");
    expect(new Set(stored("raced").grants)).toEqual(new Set([a.grant, b.grant]));
    expect(callsFrom(from, "PutRolePolicy", "raced")).toHaveLength(1);
    expect(logLines).toContainEqual({
      level: "warn",
      message: "AWS revocation was missing from the role's policy; written again",
      fields: { role: "raced", grants: [b.grant] },
    });
    // A's re-check finds both in place and writes nothing.
    const afterRepair = fake.calls.length;
    const sleptA = timerA.nextSleep();
    timerA.elapse(0);
    await within(sleptA, "A's re-check");
    expect(callsFrom(afterRepair, "GetRolePolicy", "raced")).toHaveLength(1);
    expect(callsFrom(afterRepair, "PutRolePolicy", "raced")).toEqual([]);
    expect(JSON.stringify(logLines)).not.toContain(TEST_SECRET_ACCESS_KEY);
  });

  it("takes turns through the shared lock: the second replica waits, and no deny is lost", async () => {
    const lockTimerB = steppedTimer();
    const slow = slowReplica({ lock: sharedLock() });
    const replicaB = replica({ lock: sharedLock(lockTimerB.timer) });
    const a = issued("locked");
    const b = issued("locked");
    const from = fake.calls.length;
    const aDone = slow.revoker.revoke(a.request, "completed");
    await slow.putReached;
    // B finds the lock taken and waits, without reading the policy.
    const bWaits = lockTimerB.nextSleep();
    const bDone = replicaB.revoke(b.request, "completed");
    await within(bWaits, "B's wait for the lock");
    expect(callsFrom(from, "GetRolePolicy", "locked")).toHaveLength(1);
    slow.release();
    await aDone;
    lockTimerB.elapse(0);
    await bDone;
    expect(new Set(stored("locked").grants)).toEqual(new Set([a.grant, b.grant]));
    // B read after A's write: no write ever left out A's deny.
    const writes = callsFrom(from, "PutRolePolicy", "locked");
    expect(writes).toHaveLength(2);
    expect(writes[1]?.params.PolicyDocument).toContain(a.grant);
  });

  it("repairs what the lock cannot prevent: a read that has not yet seen another's write", async () => {
    const timerA = steppedTimer();
    const replicaA = replica({ timer: timerA.timer, lock: sharedLock() });
    const replicaB = replica({ timer: steppedTimer().timer, lock: sharedLock() });
    const a = issued("lagging");
    const b = issued("lagging");
    // IAM's reads lag: B, though it takes the lock after A, still reads the old policy.
    const caughtUp = fake.staleReads("lagging", POLICY);
    await replicaA.revoke(a.request, "completed");
    await replicaB.revoke(b.request, "completed");
    expect(stored("lagging").grants).toEqual([b.grant]);
    caughtUp();
    const slept = timerA.nextSleep();
    timerA.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await within(slept, "A's re-check");
    expect(new Set(stored("lagging").grants)).toEqual(new Set([a.grant, b.grant]));
  });

  it("never drops its own earlier deny on a read that has not yet seen it", async () => {
    const revoker = replica({ timer: steppedTimer().timer });
    const first = issued("own-lag");
    const second = issued("own-lag");
    const caughtUp = fake.staleReads("own-lag", POLICY);
    await revoker.revoke(first.request, "completed");
    // The read still answers "no policy"; the write carries the first deny anyway.
    await revoker.revoke(second.request, "completed");
    caughtUp();
    expect(new Set(stored("own-lag").grants)).toEqual(new Set([first.grant, second.grant]));
  });
});

describe("IAM revocation with the shared ledger", () => {
  /** A process on the shared Redis: the lock and the ledger of denied sessions. */
  const onRedis = (timer: Timer = steppedTimer().timer) =>
    replica({ timer, lock: sharedLock(), ledger: sharedLedger() });

  /** Resolves once `condition` holds, polling; fails naming `what` after a bound. */
  const until = (what: string, condition: () => boolean) =>
    within(
      new Promise<void>((resolve) => {
        const poll = () => (condition() ? resolve() : setTimeout(poll, 2));
        poll();
      }),
      what,
    );

  it("carries every process's live denies in each write, whatever IAM's read shows", async () => {
    const replicaA = onRedis();
    const replicaB = onRedis();
    const a = issued("carried");
    const b = issued("carried");
    // IAM's reads lag: B still reads the policy as it was before A's write.
    const caughtUp = fake.staleReads("carried", POLICY);
    await replicaA.revoke(a.request, "completed");
    await replicaB.revoke(b.request, "completed");
    caughtUp();
    // No window without A's deny: B's own write already carried it.
    expect(new Set(stored("carried").grants)).toEqual(new Set([a.grant, b.grant]));
  });

  it("restores a deny after the process that wrote it has stopped", async () => {
    const replicaA = onRedis();
    const { request, grant } = issued("orphaned");
    await replicaA.revoke(request, "completed");
    expect(stored("orphaned").grants).toEqual([grant]);
    // A stops for good; then a stale writer (say, an older writ) erases its deny.
    replicaA.close();
    fake.setRolePolicy(
      "orphaned",
      POLICY,
      JSON.stringify({ Version: "2012-10-17", Statement: [] }),
    );

    // B, running all along or started since, takes up the ledger's denies.
    const timerB = steppedTimer();
    const firstSweep = timerB.nextSleep();
    onRedis(timerB.timer);
    expect(await within(firstSweep, "B's first sweep")).toBe(REVOCATION_RECHECK_DELAYS_MS[0]);
    const from = fake.calls.length;
    timerB.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    const rewritten = {
      level: "warn",
      message: "AWS revocation was missing from the role's policy; written again",
      fields: { role: "orphaned", grants: [grant] },
    };
    await until("B's write-back", () =>
      logLines.some((line) => JSON.stringify(line) === JSON.stringify(rewritten)),
    );
    expect(callsFrom(from, "PutRolePolicy", "orphaned")).toHaveLength(1);
    expect(stored("orphaned").grants).toEqual([grant]);
  });

  it("takes up no deny whose writer failed and said so: the caller retries", async () => {
    const replicaA = onRedis();
    const refused = issued("unwritten");
    fake.failNext("PutRolePolicy", "Throttling");
    await expect(replicaA.revoke(refused.request, "revoked")).rejects.toMatchObject({
      code: "aws_throttled",
    });
    // B's sweep, and B's own write for another session, leave the refused one alone.
    const timerB = steppedTimer();
    const firstSweep = timerB.nextSleep();
    const replicaB = onRedis(timerB.timer);
    await within(firstSweep, "B's first sweep");
    const other = issued("unwritten");
    await replicaB.revoke(other.request, "completed");
    const swept = timerB.nextSleep();
    timerB.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await within(swept, "B's sweep");
    await settle();
    expect(stored("unwritten").grants).toEqual([other.grant]);
  });

  it("keeps on record a deny one end of a session wrote when another end's write failed", async () => {
    // Two processes end one session at once: a complete on one, the expiry on another.
    const completer = onRedis();
    const lockTimer = steppedTimer();
    const expirer = replica({
      timer: steppedTimer().timer,
      lock: sharedLock(lockTimer.timer),
      ledger: sharedLedger(),
    });
    const { request, grant } = issued("two-ends");
    const from = fake.calls.length;
    const held = fake.hold("PutRolePolicy");
    const completing = completer.revoke(request, "completed");
    await fake.waitForCall((c) => c.action === "PutRolePolicy", { from });
    // The expiry records the same deny, then waits for the role's lock.
    const waiting = lockTimer.nextSleep();
    const expiring = expirer.revoke(request, "expired");
    await within(waiting, "the expiry's wait for the lock");
    // The complete's write fails; the expiry's, after it, succeeds.
    fake.failNext("PutRolePolicy", "Throttling");
    held();
    await expect(completing).rejects.toMatchObject({ code: "aws_throttled" });
    lockTimer.elapse(0);
    expect(await expiring).toMatchObject({ details: { grant_id: grant, deny: "grant" } });
    expect(stored("two-ends").grants).toEqual([grant]);
    expect((await sharedLedger().live("two-ends", clock.now())).map((s) => s.grant)).toEqual([
      grant,
    ]);

    // Both stop; a stale write erases the deny the expiry recorded as written.
    completer.close();
    expirer.close();
    fake.setRolePolicy(
      "two-ends",
      POLICY,
      JSON.stringify({ Version: "2012-10-17", Statement: [] }),
    );
    const timerC = steppedTimer();
    const firstSweep = timerC.nextSleep();
    onRedis(timerC.timer);
    await within(firstSweep, "the first sweep");
    const restored = fake.waitForCall(
      (c) => c.action === "PutRolePolicy" && c.params.RoleName === "two-ends",
      { from: fake.calls.length },
    );
    timerC.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await restored;
    expect(stored("two-ends").grants).toEqual([grant]);
  });

  it("keeps checking an adopted deny every two minutes until its session ends", async () => {
    const writer = onRedis();
    const { request, grant } = issued("adopted");
    await writer.revoke(request, "completed");
    writer.close();
    const timerB = steppedTimer();
    onRedis(timerB.timer);
    const asleep = (loops: number) =>
      until(`${loops} loops asleep`, () => timerB.pending().length === loops);
    await asleep(1);
    const from = fake.calls.length;
    const reads = () => callsFrom(from, "GetRolePolicy", "adopted").length;
    // The sweep finds the deny and checks it at once; then the role's loop and
    // the sweep both sleep, each for two minutes.
    timerB.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await asleep(2);
    expect(reads()).toBe(1);
    expect(timerB.pending()).toEqual([120_000, 120_000]);
    const sessionEnd = Date.parse(request.credential?.attributes?.session_expires_at ?? "");
    while (timerB.pending().length === 2) {
      const before = reads();
      timerB.elapse(120_000);
      await settle();
      // Both asleep again after one more read, or the role's loop has ended
      // with the session (with AWS's clock allowance) and only the sweep sleeps.
      const ended = () => clock.now() > sessionEnd + 60_000 && timerB.pending().length === 1;
      await until("the next check", () =>
        ended() ? true : timerB.pending().length === 2 && reads() === before + 1,
      );
    }
    // At 5 s, then every 2 minutes through 845 s; the session ends at 900 s.
    expect(reads()).toBe(8);
    expect(callsFrom(from, "PutRolePolicy", "adopted")).toEqual([]);
    expect(stored("adopted").grants).toEqual([grant]);
  });
});

describe("the background re-check", () => {
  it("checks on a widening schedule until the session ends, then stops", async () => {
    const stepped = steppedTimer();
    const revoker = replica({ timer: stepped.timer });
    const { request, grant } = issued("watched");
    const from = fake.calls.length;
    const first = stepped.nextSleep();
    await revoker.revoke(request, "completed");
    const waits = [await within(first, "the first re-check's wait")];
    const sessionEnd = Date.parse(request.credential?.attributes?.session_expires_at ?? "");
    // Until the session has ended (with a minute's allowance for AWS's clock).
    while (clock.now() + (waits.at(-1) ?? 0) <= sessionEnd + 60_000) {
      const next = stepped.nextSleep();
      stepped.elapse(waits.at(-1) ?? 0);
      waits.push(await within(next, "the next re-check"));
    }
    expect(waits.slice(0, 3)).toEqual([...REVOCATION_RECHECK_DELAYS_MS]);
    expect(new Set(waits.slice(2))).toEqual(new Set([REVOCATION_RECHECK_DELAYS_MS.at(-1)]));
    // One read per check, no write while the deny is in place.
    expect(callsFrom(from, "GetRolePolicy", "watched")).toHaveLength(waits.length);
    expect(callsFrom(from, "PutRolePolicy", "watched")).toHaveLength(1);
    // The session is over: the last wake ends the watch without calling IAM.
    const before = fake.calls.length;
    stepped.elapse(waits.at(-1) ?? 0);
    await settle();
    expect(stepped.pending()).toEqual([]);
    expect(fake.calls.length).toBe(before);
    expect(stored("watched").grants).toEqual([grant]);
  });

  it("keeps a deny while STS's end, on a clock ahead of writ's, is within the allowance", async () => {
    const stepped = steppedTimer();
    const revoker = replica({ timer: stepped.timer });
    const { request, grant } = issued("ahead");
    const { credential } = request;
    if (credential === undefined) throw new Error("no credential");
    // STS's clock runs half a minute ahead of writ's: the end it names is later
    // than the one the grant id carries, which is all that pruning sees.
    const stsEnd = Date.parse(credential.attributes?.session_expires_at ?? "") + 30_000;
    const ahead = {
      ...request,
      credential: {
        ...credential,
        attributes: {
          ...credential.attributes,
          session_expires_at: new Date(stsEnd).toISOString(),
        },
      },
    };
    clock.advance(960);
    const first = stepped.nextSleep();
    expect(await revoker.revoke(ahead, "expired")).toMatchObject({ details: { grant_id: grant } });
    await within(first, "the first re-check's wait");
    // Past the grant's end and its allowance, within STS's: the check finds the
    // deny in place, and no write drops it only for the next check to restore it.
    const from = fake.calls.length;
    const checked = stepped.nextSleep();
    stepped.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await within(checked, "the re-check");
    expect(callsFrom(from, "GetRolePolicy", "ahead")).toHaveLength(1);
    expect(callsFrom(from, "PutRolePolicy", "ahead")).toEqual([]);
    expect(stored("ahead").grants).toEqual([grant]);
  });

  it("tries a failed check again at the next due time", async () => {
    const stepped = steppedTimer();
    const revoker = replica({ timer: stepped.timer });
    const { request, grant } = issued("flaky");
    await revoker.revoke(request, "completed");
    fake.setRolePolicy("flaky", POLICY, JSON.stringify({ Version: "2012-10-17", Statement: [] }));
    fake.failNext("GetRolePolicy", "ServiceUnavailable");
    const retry = stepped.nextSleep();
    stepped.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    expect(await within(retry, "the failed check")).toBe(REVOCATION_RECHECK_DELAYS_MS[1]);
    expect(logLines).toContainEqual({
      level: "warn",
      message: "AWS revocation re-check failed; trying again later",
      fields: { role: "flaky", error: "aws_unavailable" },
    });
    expect(stored("flaky").grants).toEqual([]);
    const repaired = stepped.nextSleep();
    stepped.elapse(REVOCATION_RECHECK_DELAYS_MS[1] ?? 0);
    // Written back, then checked again soon.
    expect(await within(repaired, "the repairing check")).toBe(REVOCATION_RECHECK_DELAYS_MS[0]);
    expect(stored("flaky").grants).toEqual([grant]);
  });

  it("stops when the revoker closes", async () => {
    const stepped = steppedTimer();
    const revoker = replica({ timer: stepped.timer });
    const first = stepped.nextSleep();
    await revoker.revoke(issued("closing").request, "completed");
    await within(first, "the first re-check's wait");
    revoker.close();
    expect(stepped.pending()).toEqual([]);
    const before = fake.calls.length;
    stepped.elapse(REVOCATION_RECHECK_DELAYS_MS[0] ?? 0);
    await settle();
    expect(fake.calls.length).toBe(before);
  });
});
