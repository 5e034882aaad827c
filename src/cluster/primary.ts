import cluster, { type Worker } from "node:cluster";
import { type MetricsSnapshot, sumSnapshots } from "../adapters/prometheus-metrics.js";
import type { AuditLogReport } from "../audit/remote-log.js";
import type { ProcessRole, StartedWrit, WorkerMetrics } from "../cli/commands/start-writ.js";
import type { Logger } from "../ports/logger.js";
import { type ToWorker, toPrimary } from "./messages.js";

export interface PrimaryOptions {
  readonly workers: number;
  /** How long workers may take to drain on stop, as configured (seconds). */
  readonly shutdownGraceSeconds: number;
  readonly logger: Logger;
  /** Starts this process's part of writ; a number is the exit code of a refusal. */
  start(role: ProcessRole): Promise<StartedWrit | number>;
  /** Told once every worker listens: the API URL they share, and the metrics URL. */
  onListening(url: string, metricsUrl: string | undefined): void;
  /** Resolves on the signal that starts a graceful stop. */
  untilStopped(): Promise<unknown>;
}

/** How long workers have to start and listen. */
const START_TIMEOUT_MS = 60_000;
/** How long a scrape waits for the workers' metrics. */
const METRICS_TIMEOUT_MS = 1_000;
/** Restart delays of a worker that keeps exiting: doubled per exit, reset after a minute up. */
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 10_000;
const STEADY_MS = 60_000;

/** What the start waits for resolves to when a stop comes first. */
const STOPPED: unique symbol = Symbol("stopped");

/** The workers `node:cluster` knows of (its map may hold a slot as undefined). */
function currentWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
}

function send(worker: Worker, message: ToWorker): void {
  if (!worker.isConnected()) return;
  try {
    worker.send(message);
  } catch {
    // A worker on its way out: its exit is handled where it is seen.
  }
}

/**
 * The primary of a replica with workers. It assembles writ with the audit log,
 * the expiry sweep, notification delivery, stream trimming and `/metrics`, but
 * serves no API: it forks the workers, which share the port (`node:cluster`
 * hands connections to them in turn). After every fsync of the log it tells
 * the workers how far the log reached, which is what lets them answer their
 * callers. A worker that exits is started again; on stop the workers drain
 * first, then the primary closes the log.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  let latest: AuditLogReport | undefined;
  let broadcastQueued = false;
  const broadcast = () => {
    broadcastQueued = false;
    if (latest === undefined) return;
    for (const worker of currentWorkers()) send(worker, { writ: "audit", report: latest });
  };
  // Reports come after every fsync; workers need only the latest, once per turn.
  const onAuditReport = (report: AuditLogReport) => {
    latest = report;
    if (broadcastQueued) return;
    broadcastQueued = true;
    setImmediate(broadcast);
  };

  let nextQuery = 0;
  const queries = new Map<number, (worker: string, snapshot: MetricsSnapshot) => void>();
  // Sums must never go back, or Prometheus reads a counter reset and a rate
  // over it as a burst of everything counted so far: a worker that does not
  // answer in time counts what it last answered, and what a worker that
  // exited had counted, as last scraped, stays counted.
  const lastAnswers = new Map<string, MetricsSnapshot>();
  let exited: MetricsSnapshot | undefined;
  async function workerMetrics(): Promise<WorkerMetrics> {
    const live = currentWorkers().filter((w) => w.isConnected());
    const id = nextQuery++;
    const answered = new Map<string, MetricsSnapshot>();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, METRICS_TIMEOUT_MS);
      queries.set(id, (worker, snapshot) => {
        answered.set(worker, snapshot);
        lastAnswers.set(worker, snapshot);
        if (answered.size >= live.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      if (live.length === 0) resolve();
      for (const worker of live) send(worker, { writ: "metrics?", id });
    });
    queries.delete(id);
    const counted = [...lastAnswers]
      .filter(([worker]) => !answered.has(worker))
      .map(([, snapshot]) => snapshot);
    if (exited !== undefined) counted.push(exited);
    // A worker that answered and then exited during the scrape is among the exited already.
    for (const worker of answered.keys()) if (!lastAnswers.has(worker)) answered.delete(worker);
    return { answered, counted };
  }

  const started = await options.start({ kind: "primary", onAuditReport, workerMetrics });
  if (typeof started === "number") return started;

  let stopping = false;
  let restartDelayMs = RESTART_MIN_MS;
  /** When each worker was started, by its cluster id: a worker up a minute resets the backoff. */
  const startedAt = new Map<number, number>();
  const listening = new Set<number>();
  // Resolved once, when every worker first listens (a replacement later changes nothing).
  let resolveListening: (url: string) => void = () => {};
  const allListening = new Promise<string>((resolve) => {
    resolveListening = resolve;
  });

  cluster.on("message", (worker, raw) => {
    const message = toPrimary(raw);
    if (message?.writ === "attach") {
      // Messages sent before a worker listens for them are lost: it asks once it does.
      if (latest !== undefined) send(worker, { writ: "audit", report: latest });
      // A worker still loading when the stop was sent missed it: told again, it
      // exits now instead of starting to serve until it is killed.
      if (stopping) send(worker, { writ: "stop" });
    } else if (message?.writ === "listening") {
      listening.add(worker.id);
      if (listening.size >= options.workers) resolveListening(message.url);
    } else if (message?.writ === "metrics" && !worker.isDead()) {
      // An answer read after its worker's exit is already counted among the exited.
      queries.get(message.id)?.(String(worker.id), message.snapshot);
    }
  });
  cluster.on("exit", (worker, code, signal) => {
    listening.delete(worker.id);
    const last = lastAnswers.get(String(worker.id));
    if (last !== undefined) {
      lastAnswers.delete(String(worker.id));
      exited = exited === undefined ? last : sumSnapshots(exited, last);
    }
    const upMs = Date.now() - (startedAt.get(worker.id) ?? Date.now());
    startedAt.delete(worker.id);
    if (stopping) return;
    if (upMs > STEADY_MS) restartDelayMs = RESTART_MIN_MS;
    logger.error("worker exited; starting another", {
      worker: worker.id,
      pid: worker.process.pid,
      code,
      signal,
      restart_in_ms: restartDelayMs,
    });
    const delay = restartDelayMs;
    restartDelayMs = Math.min(restartDelayMs * 2, RESTART_MAX_MS);
    setTimeout(() => {
      if (!stopping) fork();
    }, delay).unref();
  });

  function fork(): void {
    const worker = cluster.fork();
    startedAt.set(worker.id, Date.now());
    logger.info("worker started", { worker: worker.id, pid: worker.process.pid });
  }
  // Listened for from here: a stop while the workers start drains them and
  // closes the log, as a stop later does.
  const stopped = options.untilStopped().then((): typeof STOPPED => STOPPED);
  for (let i = 0; i < options.workers; i++) fork();

  let startTimer: NodeJS.Timeout | undefined;
  const url = await Promise.race([
    allListening,
    stopped,
    new Promise<undefined>((resolve) => {
      startTimer = setTimeout(() => resolve(undefined), START_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(startTimer);
  if (url === STOPPED) {
    await stopWorkers();
    await started.server.stop();
    return 0;
  }
  if (url === undefined) {
    logger.error("workers did not start in time", { listening: listening.size });
    await stopWorkers();
    await started.server.stop();
    return 1;
  }
  options.onListening(url, started.server.metricsUrl);

  async function stopWorkers(): Promise<void> {
    stopping = true;
    await Promise.all(
      currentWorkers().map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) {
              resolve();
              return;
            }
            // Past the grace period and a margin, a worker is killed.
            const kill = setTimeout(
              () => worker.process.kill("SIGKILL"),
              (options.shutdownGraceSeconds + 10) * 1000,
            );
            worker.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            send(worker, { writ: "stop" });
          }),
      ),
    );
  }

  await stopped;
  await stopWorkers();
  // Last: the log writes whatever the stream still holds, then closes.
  await started.server.stop();
  return 0;
}
