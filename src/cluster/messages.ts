import type { MetricsSnapshot } from "../adapters/prometheus-metrics.js";
import type { AuditLogReport } from "../audit/remote-log.js";

/**
 * What a primary and its workers say to each other over the IPC channel
 * `node:cluster` opens. Every message carries `writ`, naming its kind, so
 * anything else on the channel is ignored.
 */

/** Primary → worker. */
export type ToWorker =
  /** How far the replica's audit log is fsynced, after every fsync (coalesced). */
  | { readonly writ: "audit"; readonly report: AuditLogReport }
  /** Asks for the worker's metrics, answered with `metrics` and the same `id`. */
  | { readonly writ: "metrics?"; readonly id: number }
  /** Drain in-flight requests and exit. */
  | { readonly writ: "stop" };

/** Worker → primary. */
export type ToPrimary =
  /** The worker listens for messages now: the primary answers with the latest `audit`. */
  | { readonly writ: "attach" }
  /** The worker serves the API at `url`. */
  | { readonly writ: "listening"; readonly url: string }
  | { readonly writ: "metrics"; readonly id: number; readonly snapshot: MetricsSnapshot };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isReport(value: unknown): value is AuditLogReport {
  return (
    isObject(value) &&
    (value.cursor === undefined || typeof value.cursor === "string") &&
    typeof value.writable === "boolean" &&
    typeof value.dir === "string" &&
    Number.isSafeInteger(value.seq)
  );
}

/** A message from the primary, or undefined for anything else. */
export function toWorker(message: unknown): ToWorker | undefined {
  if (!isObject(message)) return undefined;
  switch (message.writ) {
    case "audit":
      return isReport(message.report) ? (message as ToWorker) : undefined;
    case "metrics?":
      return Number.isSafeInteger(message.id) ? (message as ToWorker) : undefined;
    case "stop":
      return { writ: "stop" };
    default:
      return undefined;
  }
}

/** A message from a worker, or undefined for anything else. */
export function toPrimary(message: unknown): ToPrimary | undefined {
  if (!isObject(message)) return undefined;
  switch (message.writ) {
    case "attach":
      return { writ: "attach" };
    case "listening":
      return typeof message.url === "string" ? (message as ToPrimary) : undefined;
    case "metrics":
      return Number.isSafeInteger(message.id) &&
        isObject(message.snapshot) &&
        isObject(message.snapshot.families) &&
        isObject(message.snapshot.process)
        ? (message as ToPrimary)
        : undefined;
    default:
      return undefined;
  }
}
