import { monitorEventLoopDelay } from "node:perf_hooks";
import { EVENT_TYPES } from "../domain/events.js";
import type { Metrics } from "../ports/metrics.js";

/** One series of a family: a counter's count, or a histogram's buckets, sum and count. */
export interface SeriesSnapshot {
  readonly labels: Readonly<Record<string, string>>;
  readonly n?: number;
  readonly counts?: readonly number[];
  readonly sum?: number;
  readonly count?: number;
}

/** A process's metrics as plain data: what a worker sends its primary to be summed. */
export interface MetricsSnapshot {
  readonly families: Readonly<Record<string, readonly SeriesSnapshot[]>>;
  readonly process: {
    readonly residentBytes: number;
    readonly heapUsedBytes: number;
    readonly loopDelayP99Seconds: number;
  };
}

/** Metrics kept in this process and rendered in the Prometheus text format (0.0.4). */
export interface PrometheusMetrics extends Metrics {
  /**
   * The exposition text served at `/metrics`. With `workers` (the snapshots of
   * worker processes), every counter and histogram is the sum over this process
   * and them, and each worker's process gauges carry a `worker` label.
   */
  render(
    workers?: ReadonlyMap<string, MetricsSnapshot>,
    /**
     * Snapshots whose counters and histograms are summed in too, without
     * process gauges: workers that exited, or did not answer this scrape.
     */
    counted?: readonly MetricsSnapshot[],
  ): string;
  /** This process's counters and histograms (resets the event-loop delay window). */
  snapshot(): MetricsSnapshot;
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
  "escalationsDue",
  "events",
  "waitForChange",
  "waitForEvents",
  "nextEvents",
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

const seriesKey = (labels: Labels) => Object.values(labels).join("\u0000");

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

/** A family's series as data. */
function snapshotCounters(family: Family<{ n: number }>): SeriesSnapshot[] {
  return [...family.entries()].map(({ labels, value }) => ({ labels, n: value.n }));
}

function snapshotHistograms(family: Family<Histogram>): SeriesSnapshot[] {
  return [...family.entries()].map(({ labels, value }) => ({
    labels,
    counts: [...value.counts],
    sum: value.sum,
    count: value.count,
  }));
}

type MutableSeries = { -readonly [K in keyof SeriesSnapshot]: SeriesSnapshot[K] };

/**
 * A family's series summed with the same family in other processes' snapshots,
 * by label values. Series a snapshot holds that do not fit the family (labels
 * it does not have, buckets of another length) are skipped.
 */
function merged(
  family: Family<{ n: number }> | Family<Histogram>,
  own: SeriesSnapshot[],
  others: Iterable<MetricsSnapshot>,
): SeriesSnapshot[] {
  const byKey = new Map<string, MutableSeries>(
    own.map((series) => [seriesKey(series.labels), { ...series }]),
  );
  const names = family.labelNames.join("\u0000");
  const prototype = family.create();
  const buckets = prototype instanceof Histogram ? prototype.buckets.length : undefined;
  const fits = (series: SeriesSnapshot) =>
    Object.keys(series.labels).join("\u0000") === names &&
    (buckets === undefined
      ? Number.isFinite(series.n)
      : series.counts?.length === buckets &&
        series.counts.every(Number.isFinite) &&
        Number.isFinite(series.sum) &&
        Number.isFinite(series.count));
  for (const other of others) {
    for (const series of other.families[family.name] ?? []) {
      if (!fits(series)) continue;
      const key = seriesKey(series.labels);
      const mine = byKey.get(key);
      if (mine === undefined) {
        byKey.set(key, { ...series });
      } else if (buckets === undefined) {
        mine.n = (mine.n ?? 0) + (series.n ?? 0);
      } else {
        mine.counts = (mine.counts ?? []).map((c, i) => c + (series.counts?.[i] ?? 0));
        mine.sum = (mine.sum ?? 0) + (series.sum ?? 0);
        mine.count = (mine.count ?? 0) + (series.count ?? 0);
      }
    }
  }
  return [...byKey.values()];
}

function renderCounters(
  out: string[],
  family: Family<{ n: number }>,
  others: Iterable<MetricsSnapshot>,
  type = "counter",
): void {
  out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${type}`);
  for (const { labels, n } of merged(family, snapshotCounters(family), others)) {
    out.push(`${family.name}${formatLabels(labels)} ${formatNumber(n ?? 0)}`);
  }
}

function renderHistograms(
  out: string[],
  family: Family<Histogram>,
  others: Iterable<MetricsSnapshot>,
): void {
  out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} histogram`);
  const buckets = family.create().buckets;
  for (const { labels, counts, sum, count } of merged(family, snapshotHistograms(family), others)) {
    let cumulative = 0;
    buckets.forEach((le, i) => {
      cumulative += counts?.[i] ?? 0;
      out.push(`${family.name}_bucket${formatLabels(labels, ["le", String(le)])} ${cumulative}`);
    });
    out.push(`${family.name}_bucket${formatLabels(labels, ["le", "+Inf"])} ${count ?? 0}`);
    out.push(`${family.name}_sum${formatLabels(labels)} ${formatNumber(sum ?? 0)}`);
    out.push(`${family.name}_count${formatLabels(labels)} ${count ?? 0}`);
  }
}

/**
 * Two snapshots' counters and histograms summed, series by series, with the
 * process gauges of the first: what a primary keeps of workers that exited.
 */
export function sumSnapshots(a: MetricsSnapshot, b: MetricsSnapshot): MetricsSnapshot {
  const families: Record<string, SeriesSnapshot[]> = {};
  for (const name of new Set([...Object.keys(a.families), ...Object.keys(b.families)])) {
    const byKey = new Map<string, MutableSeries>();
    for (const series of [...(a.families[name] ?? []), ...(b.families[name] ?? [])]) {
      const key = seriesKey(series.labels);
      const mine = byKey.get(key);
      if (mine === undefined) {
        byKey.set(key, { ...series });
        continue;
      }
      if (series.n !== undefined) mine.n = (mine.n ?? 0) + series.n;
      if (series.counts !== undefined) {
        mine.counts = series.counts.map((c, i) => c + (mine.counts?.[i] ?? 0));
      }
      if (series.sum !== undefined) mine.sum = (mine.sum ?? 0) + series.sum;
      if (series.count !== undefined) mine.count = (mine.count ?? 0) + series.count;
    }
    families[name] = [...byKey.values()];
  }
  return { families, process: a.process };
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
    "Calls refused by a rate limit (agents' requests, resource servers' consumes).",
    [],
    counter,
  );
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  /** This process's gauges; reading them starts a new event-loop delay window. */
  function processGauges(): MetricsSnapshot["process"] {
    const memory = process.memoryUsage();
    const p99 = loopDelay.percentile(99) / 1e9;
    loopDelay.reset();
    return { residentBytes: memory.rss, heapUsedBytes: memory.heapUsed, loopDelayP99Seconds: p99 };
  }

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

    render(workers = new Map<string, MetricsSnapshot>(), counted = []) {
      const others = [...workers.values(), ...counted];
      const out: string[] = [];
      renderCounters(out, httpRequests, others);
      renderHistograms(out, httpSeconds, others);
      renderCounters(out, decisions, others);
      renderHistograms(out, approvalSeconds, others);
      renderCounters(out, credentials, others);
      renderCounters(out, tokensUsed, others);
      renderCounters(out, replays, others);
      renderCounters(out, events, others);
      renderCounters(out, redisErrors, others);
      renderCounters(out, rateLimited, others);
      const own = processGauges();
      const gauge = (
        name: string,
        help: string,
        value: (p: MetricsSnapshot["process"]) => number,
      ) => {
        out.push(
          `# HELP ${name} ${help}`,
          `# TYPE ${name} gauge`,
          `${name} ${formatNumber(value(own))}`,
        );
        for (const [worker, snapshot] of workers) {
          out.push(`${name}${formatLabels({ worker })} ${formatNumber(value(snapshot.process))}`);
        }
      };
      out.push(
        "# HELP process_start_time_seconds Start time of the process since the epoch, in seconds.",
        "# TYPE process_start_time_seconds gauge",
        `process_start_time_seconds ${startedAt}`,
      );
      gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes (workers labelled by worker).",
        (p) => p.residentBytes,
      );
      gauge(
        "nodejs_heap_used_bytes",
        "V8 heap in use, in bytes (workers labelled by worker).",
        (p) => p.heapUsedBytes,
      );
      gauge(
        "nodejs_eventloop_delay_p99_seconds",
        "99th percentile event-loop delay since the last scrape (GC pauses and slow handlers show here; workers labelled by worker).",
        (p) => p.loopDelayP99Seconds,
      );
      return `${out.join("\n")}\n`;
    },

    snapshot() {
      const families: Record<string, SeriesSnapshot[]> = {};
      for (const family of [
        httpRequests,
        decisions,
        credentials,
        tokensUsed,
        replays,
        events,
        redisErrors,
        rateLimited,
      ]) {
        families[family.name] = snapshotCounters(family);
      }
      for (const family of [httpSeconds, approvalSeconds]) {
        families[family.name] = snapshotHistograms(family);
      }
      return { families, process: processGauges() };
    },

    close() {
      loopDelay.disable();
    },
  };
}
