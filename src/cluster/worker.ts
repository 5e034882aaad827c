import cluster from "node:cluster";
import { createRemoteAuditLog } from "../audit/remote-log.js";
import type { ProcessRole, StartedWrit } from "../cli/commands/start-writ.js";
import type { Logger } from "../ports/logger.js";
import { type ToPrimary, toWorker } from "./messages.js";

export interface WorkerOptions {
  readonly logger: Logger;
  /** Starts this process's part of writ; a number is the exit code of a refusal. */
  start(role: ProcessRole): Promise<StartedWrit | number>;
}

/** How long a new worker waits for its primary's first report on the audit log. */
const READY_TIMEOUT_MS = 30_000;

function tell(message: ToPrimary): void {
  process.send?.(message);
}

/**
 * A worker of a replica: serves the API on the port it shares with its sibling
 * workers. Its audit log is its primary's, known by the primary's reports; if
 * the primary goes away, nothing more can be made durable, so the worker fails
 * closed and exits. It drains and exits when its primary says stop, or on
 * SIGTERM or SIGINT (a signal to the whole process group reaches it too).
 */
export async function runWorker(options: WorkerOptions): Promise<number> {
  const { logger } = options;
  const audit = createRemoteAuditLog();
  let started: StartedWrit | undefined;
  let stopping: Promise<number> | undefined;
  let leaving = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });

  function stop(code: number): Promise<number> {
    stopping ??= (async () => {
      await started?.server.stop();
      return code;
    })().then(
      (c) => c,
      () => 1,
    );
    void stopping.then(resolveDone);
    return stopping;
  }

  const onMessage = (raw: unknown) => {
    const message = toWorker(raw);
    if (message === undefined) return;
    switch (message.writ) {
      case "audit":
        audit.report(message.report);
        break;
      case "metrics?": {
        const snapshot = started?.metrics?.snapshot();
        if (snapshot !== undefined) tell({ writ: "metrics", id: message.id, snapshot });
        break;
      }
      case "stop":
        void stop(0);
        break;
    }
  };
  const onDisconnect = () => {
    if (leaving) return;
    // Node exits a worker at once (code 0) when its channel closes unexpectedly,
    // cutting every call in flight; it checks this flag just after telling the
    // worker's listeners. Set, the worker fails closed and drains instead.
    if (cluster.worker !== undefined) cluster.worker.exitedAfterDisconnect = true;
    // Fail closed, draining or not: callers waiting for the log get
    // audit_unavailable at once, and no new change is accepted.
    audit.lost();
    if (stopping === undefined) logger.error("the primary process is gone; this worker stops");
    void stop(1);
  };
  process.on("message", onMessage);
  // The worker's own event, not the process's: Node's exit on a lost channel
  // comes before later listeners of the process would run.
  cluster.worker?.on("disconnect", onDisconnect);
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void stop(0));
  try {
    tell({ writ: "attach" });
    let readyTimer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      audit.ready.then(() => true),
      // Told to stop, or its primary gone, while it waits: it waits no longer.
      done.then(() => true),
      new Promise<false>((resolve) => {
        readyTimer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(readyTimer);
    if (!ready) {
      logger.error("no report from the primary on the audit log; this worker stops");
      return 1;
    }
    // Told to stop before it started: nothing to drain.
    if (stopping !== undefined) return await stopping;
    const result = await options.start({ kind: "worker", audit });
    if (typeof result === "number") return result;
    started = result;
    if (stopping !== undefined) {
      // Told to stop while starting.
      await result.server.stop();
      return stopping;
    }
    tell({ writ: "listening", url: result.server.url });
    return await done;
  } finally {
    // However it ends (refused to start, no report in time, stopped), the worker
    // lets go of its primary: a listener on the channel keeps the process alive,
    // and a worker that never exits is never replaced.
    leaving = true;
    process.off("message", onMessage);
    cluster.worker?.off("disconnect", onDisconnect);
    if (process.connected) process.disconnect?.();
  }
}
