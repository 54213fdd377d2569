import { performance } from "node:perf_hooks";
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from "prom-client";
import type { StoreSession } from "../store/store-session.js";

export interface RunMetricsOptions {
  /** A run still running after this long counts in runtrail_stuck_runs. */
  stuckAfterMs: number;
  /** Clock, epoch ms. Default Date.now. */
  now?: () => number;
  /** Finished runs are looked for this far back (by finished_at) on each refresh. Default 15 min. */
  lookbackMs?: number;
  /**
   * Also export prom-client's process and Node.js metrics (CPU, memory, event loop lag, GC),
   * named with {@link PROCESS_METRICS_PREFIX}. Default true.
   */
  processMetrics?: boolean;
}

/** How far back each refresh looks for finished runs and stages, by default. */
export const DEFAULT_LOOKBACK_MS = 15 * 60_000;

/** Prefix of the process metrics: `runtrail_process_cpu_seconds_total`, `runtrail_nodejs_...`. */
export const PROCESS_METRICS_PREFIX = "runtrail_";

/** Buckets for runs and stages, which take from a tenth of a second to hours. */
export const RUN_DURATION_BUCKETS = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400,
];

/** Buckets for HTTP requests, ingests and other work of the server itself. */
const SERVER_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Label value for a run without a tenant. */
const NO_TENANT = "";

/** Methods kept as label values; any other becomes `_OTHER`, so clients cannot add series. */
const HTTP_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]);

/**
 * A gauge of the process metrics whose name ends in `_total`, which Prometheus's linter rejects
 * for anything but a counter; the same numbers are in the metric without the suffix, by type.
 */
const DROPPED_PROCESS_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

interface FinishedRun {
  run_id: string;
  trace_id: string | null;
  tenant: string;
  pipeline: string;
  status: string;
  finished_us: number;
  duration_seconds: number | null;
  rows_in: number;
  rows_out: number;
  llm_calls: number;
  tokens: number;
  input_tokens: number;
  output_tokens: number;
}

interface FinishedStage {
  run_id: string;
  span_id: string;
  stage: string;
  status: string;
  pipeline: string;
  trace_id: string | null;
  finished_us: number;
  duration_seconds: number | null;
}

interface RunningCount {
  pipeline: string;
  running: number;
  stuck: number;
}

/**
 * `finished_at` alone bounds the scan, so a run that ran for hours is found as soon as it ends;
 * runs are appended in start order, so the row groups of older runs have older `finished_at`
 * and DuckDB's zone maps skip them.
 */
const FINISHED_RUNS = `
SELECT run_id::VARCHAR AS run_id, trace_id, coalesce(tenant_id, '') AS tenant, pipeline, status,
  epoch_us(finished_at)::DOUBLE AS finished_us, duration_seconds,
  coalesce(rows_in, 0)::DOUBLE AS rows_in, coalesce(rows_out, 0)::DOUBLE AS rows_out,
  llm_calls::DOUBLE AS llm_calls, tokens::DOUBLE AS tokens,
  input_tokens::DOUBLE AS input_tokens, output_tokens::DOUBLE AS output_tokens
FROM runs
WHERE status <> 'running' AND finished_at >= make_timestamptz($1::BIGINT)
ORDER BY finished_at, run_id`;

/** Finished stages with their run's pipeline; a stage whose run is not stored yet waits for it. */
const FINISHED_STAGES = `
WITH s AS (
  SELECT run_id, span_id, name, status, finished_at, duration_seconds
  FROM stages
  WHERE status <> 'running' AND finished_at >= make_timestamptz($1::BIGINT)
)
SELECT s.run_id::VARCHAR AS run_id, s.span_id, s.name AS stage, s.status, r.pipeline, r.trace_id,
  epoch_us(s.finished_at)::DOUBLE AS finished_us, s.duration_seconds
FROM s JOIN runs r ON r.run_id = s.run_id
ORDER BY s.finished_at, s.run_id, s.span_id`;

const RUNNING = `
SELECT pipeline, count(*)::DOUBLE AS running,
  count(*) FILTER (WHERE started_at < make_timestamptz($1::BIGINT))::DOUBLE AS stuck
FROM runs
WHERE status = 'running'
GROUP BY pipeline`;

/**
 * The runtrail server's Prometheus metrics. Run and stage metrics are derived from the store,
 * whoever wrote the rows (this process, another process's spool, OTLP): {@link refresh} reads
 * the runs and stages that finished lately and counts each once, and recomputes the gauges of
 * running runs. Request and ingest metrics are observed as the server works.
 *
 * Counters start at zero with the process, as Prometheus expects of a counter after a restart:
 * runs that finished before this object was created are not counted (the first refresh records
 * them as seen), only those that finish after, or that reach the store after the first refresh.
 * A run is counted once, with the first final status seen: a crashed run that later completes
 * stays counted as crashed. Runs and stages are looked for by `finished_at` within the lookback
 * window, and only those seen within it are remembered, so memory stays bounded; a row that
 * reaches the store later than the window after it finished is not counted.
 *
 * Metrics live in registries of their own, never prom-client's global one.
 */
export class RunMetrics {
  private readonly stuckAfterMs: number;
  private readonly now: () => number;
  private readonly lookbackMs: number;
  /** Creation time, epoch µs: what the first refresh finds finished before it is not counted. */
  private readonly createdUs: number;
  private firstRefresh = true;
  /** The lower bound of the last refresh, in epoch µs: it never moves back. */
  private cutoffUs = Number.NEGATIVE_INFINITY;
  /** Counted (or, on the first refresh, skipped) runs, by run id: their `finished_at` in µs. */
  private readonly seenRuns = new Map<string, number>();
  /** Counted stages, by run id and span id: their `finished_at` in µs. */
  private readonly seenStages = new Map<string, number>();
  /** Pipelines that have had running runs, so their gauge goes back to 0 rather than vanishing. */
  private readonly runningPipelines = new Set<string>();
  /** Refreshes run one after another, never interleaved on the session. */
  private refreshing: Promise<void> = Promise.resolve();

  /** Text format 0.0.4: the same metrics, without exemplars. */
  private readonly prometheus = new Registry<PrometheusContentType>();
  /** OpenMetrics 1.0.0, with the exemplars of the duration histograms. */
  private readonly openMetrics = new Registry<OpenMetricsContentType>();

  private readonly runs = new Counter({
    name: "runtrail_runs_total",
    help: "Runs that reached a final status, by the status they reached.",
    labelNames: ["pipeline", "status", "tenant"] as const,
    registers: [],
  });
  private readonly runDuration = new Histogram({
    name: "runtrail_run_duration_seconds",
    help: "Duration of finished runs, with the run's trace id as exemplar.",
    labelNames: ["pipeline", "status"] as const,
    buckets: RUN_DURATION_BUCKETS,
    enableExemplars: true,
    registers: [],
  });
  private readonly stageDuration = new Histogram({
    name: "runtrail_stage_duration_seconds",
    help: "Duration of finished stage executions, with the run's trace id as exemplar.",
    labelNames: ["pipeline", "stage", "status"] as const,
    buckets: RUN_DURATION_BUCKETS,
    enableExemplars: true,
    registers: [],
  });
  private readonly llmCalls = new Counter({
    name: "runtrail_llm_calls_total",
    help: "LLM calls made by finished runs.",
    labelNames: ["pipeline"] as const,
    registers: [],
  });
  private readonly tokens = new Counter({
    name: "runtrail_tokens_total",
    help: "LLM tokens used by finished runs, by type (input, output, total).",
    labelNames: ["pipeline", "type"] as const,
    registers: [],
  });
  private readonly rows = new Counter({
    name: "runtrail_rows_total",
    help: "Rows read (in) and written (out) by finished runs.",
    labelNames: ["pipeline", "direction"] as const,
    registers: [],
  });
  private readonly crashed = new Counter({
    name: "runtrail_runs_crashed_total",
    help: "Runs that crashed: their process went away while they were running.",
    labelNames: ["pipeline"] as const,
    registers: [],
  });
  private readonly running = new Gauge({
    name: "runtrail_runs_running",
    help: "Runs running now, as the store has them.",
    labelNames: ["pipeline"] as const,
    registers: [],
  });
  private readonly stuck = new Gauge({
    name: "runtrail_stuck_runs",
    help: "Runs still running long after they started.",
    registers: [],
  });
  private readonly httpRequests = new Counter({
    name: "runtrail_http_requests_total",
    help: "HTTP requests answered by the server, by route pattern and status code.",
    labelNames: ["method", "route", "status"] as const,
    registers: [],
  });
  private readonly httpDuration = new Histogram({
    name: "runtrail_http_request_duration_seconds",
    help: "Time to answer HTTP requests, by route pattern.",
    labelNames: ["method", "route"] as const,
    buckets: SERVER_DURATION_BUCKETS,
    registers: [],
  });
  private readonly ingestRows = new Counter({
    name: "runtrail_ingest_rows_total",
    help: "Rows written to the store by ingests, by source.",
    labelNames: ["source"] as const,
    registers: [],
  });
  private readonly ingestBatches = new Counter({
    name: "runtrail_ingest_batches_total",
    help: "Ingests of rows into the store, by source and result (ok, error).",
    labelNames: ["source", "result"] as const,
    registers: [],
  });
  private readonly ingestDuration = new Histogram({
    name: "runtrail_ingest_duration_seconds",
    help: "Time to ingest a batch of rows into the store, by source.",
    labelNames: ["source"] as const,
    buckets: SERVER_DURATION_BUCKETS,
    registers: [],
  });
  private readonly otlpSpans = new Counter({
    name: "runtrail_otlp_spans_total",
    help: "Spans received on /v1/traces, by result: accepted, or rejected as invalid. Requests turned away (429, 503) count in runtrail_http_requests_total.",
    labelNames: ["result"] as const,
    registers: [],
  });
  private readonly refreshDuration = new Gauge({
    name: "runtrail_metrics_refresh_duration_seconds",
    help: "Time the last refresh of run metrics from the store took.",
    registers: [],
  });
  private readonly refreshTime = new Gauge({
    name: "runtrail_metrics_refresh_timestamp_seconds",
    help: "When run metrics were last refreshed from the store, in Unix seconds.",
    registers: [],
  });
  private readonly refreshFailures = new Counter({
    name: "runtrail_metrics_refresh_failures_total",
    help: "Refreshes of run metrics from the store that failed.",
    registers: [],
  });

  constructor(options: RunMetricsOptions) {
    this.stuckAfterMs = options.stuckAfterMs;
    this.now = options.now ?? Date.now;
    this.lookbackMs = options.lookbackMs ?? DEFAULT_LOOKBACK_MS;
    if (!(this.lookbackMs > 0)) throw new RangeError("lookbackMs must be positive");
    this.createdUs = this.now() * 1000;
    this.openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);

    const counters: Counter[] = [
      this.runs,
      this.llmCalls,
      this.tokens,
      this.rows,
      this.crashed,
      this.httpRequests,
      this.ingestRows,
      this.ingestBatches,
      this.otlpSpans,
      this.refreshFailures,
    ];
    const others: (Gauge | Histogram)[] = [
      this.runDuration,
      this.stageDuration,
      this.running,
      this.stuck,
      this.httpDuration,
      this.ingestDuration,
      this.refreshDuration,
      this.refreshTime,
    ];
    for (const metric of counters) this.register(metric, "counter");
    for (const metric of others) this.register(metric, "other");
    if (options.processMetrics ?? true) this.registerProcessMetrics();
  }

  /** Reads the store: counts newly finished runs and stages once each, and recomputes gauges. */
  refresh(session: StoreSession): Promise<void> {
    const next = this.refreshing.then(() => this.refreshOnce(session));
    this.refreshing = next.catch(() => undefined);
    return next;
  }

  /**
   * Every HTTP request the server answered. `route` is the route pattern (e.g. "/api/runs/:id"),
   * never a raw path. A method outside the standard ones is counted as `_OTHER`.
   */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const upper = method.toUpperCase();
    const m = HTTP_METHODS.has(upper) ? upper : "_OTHER";
    this.httpRequests.inc({ method: m, route, status: String(status) });
    if (Number.isFinite(seconds)) {
      this.httpDuration.observe({ method: m, route }, Math.max(0, seconds));
    }
  }

  /** Every ingest of rows into the store (source "spool" or "otlp"). */
  observeIngest(source: string, rows: number, seconds: number, ok: boolean): void {
    this.ingestBatches.inc({ source, result: ok ? "ok" : "error" });
    // Rows of a failed ingest did not reach the store.
    this.ingestRows.inc({ source }, ok ? positive(rows) : 0);
    if (Number.isFinite(seconds)) this.ingestDuration.observe({ source }, Math.max(0, seconds));
  }

  /** Spans of an OTLP request, accepted or rejected as invalid. */
  observeOtlp(result: "accepted" | "rejected", spans: number): void {
    this.otlpSpans.inc({ result }, positive(spans));
  }

  /**
   * The exposition for a scrape: OpenMetrics (with exemplars) when the Accept header asks for
   * application/openmetrics-text, else Prometheus text format 0.0.4.
   */
  async render(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    const registry = prefersOpenMetrics(accept) ? this.openMetrics : this.prometheus;
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  /**
   * Puts a metric in both registries. prom-client's OpenMetrics registry renames each counter
   * it renders (`runtrail_runs_total` to `runtrail_runs`, the OpenMetrics family name) on the
   * object itself, which would take `_total` off the text format's samples; so it holds a view
   * of each counter, an object whose prototype is the counter and that takes the new name for
   * itself. Histograms with exemplars are made with no registry, as prom-client refuses them in
   * a text format registry at construction but renders them there without exemplars.
   */
  private register(metric: Metric, kind: "counter" | "other"): void {
    this.prometheus.registerMetric(metric);
    this.openMetrics.registerMetric(kind === "counter" ? Object.create(metric) : metric);
  }

  private registerProcessMetrics(): void {
    const scratch = new Registry();
    collectDefaultMetrics({ register: scratch, prefix: PROCESS_METRICS_PREFIX });
    for (const name of DROPPED_PROCESS_METRICS) {
      scratch.removeSingleMetric(PROCESS_METRICS_PREFIX + name);
    }
    for (const metric of scratch.getMetricsAsArray()) {
      const real = scratch.getSingleMetric(metric.name);
      // The type is a string at run time, whatever prom-client's typings say.
      const kind = String(metric.type) === "counter" ? "counter" : "other";
      if (real !== undefined) this.register(real, kind);
    }
  }

  private async refreshOnce(session: StoreSession): Promise<void> {
    const began = performance.now();
    const nowMs = this.now();
    this.cutoffUs = Math.max(this.cutoffUs, (nowMs - this.lookbackMs) * 1000);
    const stuckBeforeUs = (nowMs - this.stuckAfterMs) * 1000;
    let runs: FinishedRun[];
    let stages: FinishedStage[];
    let running: RunningCount[];
    try {
      runs = await session.all<FinishedRun>(FINISHED_RUNS, [this.cutoffUs]);
      stages = await session.all<FinishedStage>(FINISHED_STAGES, [this.cutoffUs]);
      running = await session.all<RunningCount>(RUNNING, [stuckBeforeUs]);
    } catch (error) {
      this.refreshFailures.inc();
      throw error;
    }
    // From here on nothing awaits: the rows are applied all at once.
    const baseline = this.firstRefresh;
    this.firstRefresh = false;
    for (const run of runs) this.countRun(run, baseline);
    for (const stage of stages) this.countStage(stage, baseline);
    forgetBefore(this.seenRuns, this.cutoffUs);
    forgetBefore(this.seenStages, this.cutoffUs);

    for (const pipeline of this.runningPipelines) this.running.set({ pipeline }, 0);
    let stuck = 0;
    for (const row of running) {
      this.runningPipelines.add(row.pipeline);
      this.running.set({ pipeline: row.pipeline }, row.running);
      stuck += row.stuck;
    }
    this.stuck.set(stuck);
    this.refreshDuration.set((performance.now() - began) / 1000);
    this.refreshTime.set(nowMs / 1000);
  }

  private countRun(run: FinishedRun, baseline: boolean): void {
    if (this.seenRuns.has(run.run_id)) return;
    this.seenRuns.set(run.run_id, run.finished_us);
    if (baseline && run.finished_us < this.createdUs) return;
    const { pipeline, status } = run;
    this.runs.inc({ pipeline, status, tenant: run.tenant || NO_TENANT });
    if (status === "crashed") this.crashed.inc({ pipeline });
    if (run.duration_seconds !== null && Number.isFinite(run.duration_seconds)) {
      this.runDuration.observe({
        labels: { pipeline, status },
        value: Math.max(0, run.duration_seconds),
        exemplarLabels: exemplarOf(run.trace_id),
      });
    }
    this.llmCalls.inc({ pipeline }, positive(run.llm_calls));
    this.tokens.inc({ pipeline, type: "input" }, positive(run.input_tokens));
    this.tokens.inc({ pipeline, type: "output" }, positive(run.output_tokens));
    this.tokens.inc({ pipeline, type: "total" }, positive(run.tokens));
    this.rows.inc({ pipeline, direction: "in" }, positive(run.rows_in));
    this.rows.inc({ pipeline, direction: "out" }, positive(run.rows_out));
  }

  private countStage(stage: FinishedStage, baseline: boolean): void {
    const key = `${stage.run_id}/${stage.span_id}`;
    if (this.seenStages.has(key)) return;
    this.seenStages.set(key, stage.finished_us);
    if (baseline && stage.finished_us < this.createdUs) return;
    if (stage.duration_seconds === null || !Number.isFinite(stage.duration_seconds)) return;
    this.stageDuration.observe({
      labels: { pipeline: stage.pipeline, stage: stage.stage, status: stage.status },
      value: Math.max(0, stage.duration_seconds),
      exemplarLabels: exemplarOf(stage.trace_id),
    });
  }
}

/** A count from the store as a counter increment: never negative, never NaN. */
function positive(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * The exemplar of an observation: the run's trace id, so a dashboard can open the trace.
 * OpenMetrics allows 128 characters of exemplar labels; an id too long for that is left out.
 */
function exemplarOf(traceId: string | null): Record<string, string> {
  return traceId && traceId.length <= 64 ? { trace_id: traceId } : {};
}

function forgetBefore(seen: Map<string, number>, cutoffUs: number): void {
  for (const [key, finishedUs] of seen) if (finishedUs < cutoffUs) seen.delete(key);
}

/**
 * Whether a scrape's Accept header asks for OpenMetrics: an `application/openmetrics-text`
 * range with a quality above zero and at least that of `text/plain`. Prometheus sends both and
 * prefers OpenMetrics; other clients get the text format.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (!accept) return false;
  let openMetrics = 0;
  let text = 0;
  for (const range of accept.split(",")) {
    const [type = "", ...params] = range.split(";").map((part) => part.trim().toLowerCase());
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split("=").map((part) => part.trim());
      if (key === "q" && value !== undefined) {
        const parsed = Number(value);
        q = Number.isFinite(parsed) ? parsed : 0;
      }
    }
    if (type === "application/openmetrics-text") openMetrics = Math.max(openMetrics, q);
    else if (type === "text/plain") text = Math.max(text, q);
  }
  return openMetrics > 0 && openMetrics >= text;
}
