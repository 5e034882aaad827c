import { monitorEventLoopDelay } from "node:perf_hooks";
import { EVENT_TYPES } from "../domain/events.js";
import type { Metrics } from "../ports/metrics.js";

/** Metrics kept in this process and rendered in the Prometheus text format (0.0.4). */
export interface PrometheusMetrics extends Metrics {
  /** The exposition text served at `/metrics`. */
  render(): string;
  /** Stops the event-loop delay monitor. */
  close(): void;
}

/** The `Content-Type` of {@link PrometheusMetrics.render}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Beyond this many label sets a family folds new ones into `other`: a bug that
 * leaked an unbounded value into a label would otherwise grow memory forever.
 */
const MAX_SERIES_PER_FAMILY = 2000;

const HTTP_SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
const APPROVAL_SECONDS_BUCKETS = [
  1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 86_400,
];
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
const EFFECTS = new Set(["allow", "approve", "deny"]);
const REDIS_OPERATIONS = new Set([
  "create",
  "get",
  "commit",
  "append",
  "list",
  "due",
  "events",
  "waitForChange",
  "waitForEvents",
  "ready",
  "rate_limit",
]);

type Labels = Readonly<Record<string, string>>;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

/** A family of series keyed by their label values, bounded in size. */
class Family<T> {
  readonly #series = new Map<string, { labels: Labels; value: T }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly create: () => T,
  ) {}

  get(values: readonly string[]): T {
    const key = values.join("\u0000");
    const found = this.#series.get(key);
    if (found !== undefined) return found.value;
    const folded = this.#series.size >= MAX_SERIES_PER_FAMILY ? values.map(() => "other") : values;
    const foldedKey = folded.join("\u0000");
    const existing = this.#series.get(foldedKey);
    if (existing !== undefined) return existing.value;
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, i) => {
      labels[name] = folded[i] ?? "";
    });
    const entry = { labels, value: this.create() };
    this.#series.set(foldedKey, entry);
    return entry.value;
  }

  entries(): Iterable<{ labels: Labels; value: T }> {
    return this.#series.values();
  }
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
}

function renderCounters(out: string[], family: Family<{ n: number }>, type = "counter"): void {
  out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${type}`);
  for (const { labels, value } of family.entries()) {
    out.push(`${family.name}${formatLabels(labels)} ${formatNumber(value.n)}`);
  }
}

function renderHistograms(out: string[], family: Family<Histogram>): void {
  out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} histogram`);
  for (const { labels, value } of family.entries()) {
    let cumulative = 0;
    value.buckets.forEach((le, i) => {
      cumulative += value.counts[i] as number;
      out.push(`${family.name}_bucket${formatLabels(labels, ["le", String(le)])} ${cumulative}`);
    });
    out.push(`${family.name}_bucket${formatLabels(labels, ["le", "+Inf"])} ${value.count}`);
    out.push(`${family.name}_sum${formatLabels(labels)} ${formatNumber(value.sum)}`);
    out.push(`${family.name}_count${formatLabels(labels)} ${value.count}`);
  }
}

const counter = () => ({ n: 0 });

/**
 * The metrics registry of one writ process. Each replica counts what it did
 * itself; Prometheus sums across replicas, so nothing is counted twice.
 */
export function createPrometheusMetrics(options: { startedAtMs?: number } = {}): PrometheusMetrics {
  const startedAt = (options.startedAtMs ?? Date.now()) / 1000;
  const httpRequests = new Family(
    "writ_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    counter,
  );
  const httpSeconds = new Family(
    "writ_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    () => new Histogram(HTTP_SECONDS_BUCKETS),
  );
  const decisions = new Family(
    "writ_decisions_total",
    "Policy decisions on new requests, by effect.",
    ["effect"],
    counter,
  );
  const approvalSeconds = new Family(
    "writ_approval_latency_seconds",
    "Time from a request to its approval by reviewers (policy approvals excluded).",
    [],
    () => new Histogram(APPROVAL_SECONDS_BUCKETS),
  );
  const credentials = new Family(
    "writ_credentials_issued_total",
    "Credentials minted and handed out, by type.",
    ["type"],
    counter,
  );
  const tokensUsed = new Family(
    "writ_tokens_used_total",
    "Tokens consumed by resource servers (first use).",
    [],
    counter,
  );
  const replays = new Family(
    "writ_token_replays_blocked_total",
    "Consumes of an already used token, refused and recorded.",
    [],
    counter,
  );
  const events = new Family(
    "writ_events_total",
    "Events this process recorded, by type.",
    ["type"],
    counter,
  );
  const redisErrors = new Family(
    "writ_redis_errors_total",
    "Failed calls to Redis, by operation.",
    ["operation"],
    counter,
  );
  const rateLimited = new Family(
    "writ_rate_limited_total",
    "Requests refused by the per-agent rate limit.",
    [],
    counter,
  );
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  // Series with no labels exist from the start, so a rate over them is defined at zero.
  for (const family of [tokensUsed, replays, rateLimited]) family.get([]);
  approvalSeconds.get([]);

  return {
    observeHttp(route, method, status, seconds) {
      const m = METHODS.has(method) ? method : "other";
      const s =
        Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : "other";
      httpRequests.get([route, m, s]).n++;
      httpSeconds.get([route]).observe(seconds);
    },

    observeEvents(request, recorded) {
      for (const event of recorded) {
        events.get([KNOWN_EVENT_TYPES.has(event.type) ? event.type : "other"]).n++;
        switch (event.type) {
          case "request.decided": {
            const effect = String(event.data.effect);
            decisions.get([EFFECTS.has(effect) ? effect : "other"]).n++;
            break;
          }
          case "request.approved":
            if (event.data.by === "reviewers") {
              approvalSeconds.get([]).observe(Math.max(0, event.time - request.createdAt) / 1000);
            }
            break;
          case "credential.issued":
            credentials.get([request.credentialType === "aws" ? "aws" : "jwt"]).n++;
            break;
          case "token.used":
            tokensUsed.get([]).n++;
            break;
          case "token.replay_blocked":
            replays.get([]).n++;
            break;
        }
      }
    },

    countRedisError(operation) {
      redisErrors.get([REDIS_OPERATIONS.has(operation) ? operation : "other"]).n++;
    },

    countRateLimited() {
      rateLimited.get([]).n++;
    },

    render() {
      const out: string[] = [];
      renderCounters(out, httpRequests);
      renderHistograms(out, httpSeconds);
      renderCounters(out, decisions);
      renderHistograms(out, approvalSeconds);
      renderCounters(out, credentials);
      renderCounters(out, tokensUsed);
      renderCounters(out, replays);
      renderCounters(out, events);
      renderCounters(out, redisErrors);
      renderCounters(out, rateLimited);
      const memory = process.memoryUsage();
      out.push(
        "# HELP process_start_time_seconds Start time of the process since the epoch, in seconds.",
        "# TYPE process_start_time_seconds gauge",
        `process_start_time_seconds ${startedAt}`,
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        `process_resident_memory_bytes ${memory.rss}`,
        "# HELP nodejs_heap_used_bytes V8 heap in use, in bytes.",
        "# TYPE nodejs_heap_used_bytes gauge",
        `nodejs_heap_used_bytes ${memory.heapUsed}`,
        "# HELP nodejs_eventloop_delay_p99_seconds 99th percentile event-loop delay since the last scrape (GC pauses and slow handlers show here).",
        "# TYPE nodejs_eventloop_delay_p99_seconds gauge",
        `nodejs_eventloop_delay_p99_seconds ${formatNumber(loopDelay.percentile(99) / 1e9)}`,
      );
      loopDelay.reset();
      return `${out.join("\n")}\n`;
    },

    close() {
      loopDelay.disable();
    },
  };
}
