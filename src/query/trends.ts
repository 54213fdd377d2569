import type { RunRow } from "../record/rows.js";
import { FAILURE_STATUSES } from "../record/run-status.js";
import type { StoreSession } from "../store/store-session.js";
import { listRuns } from "./list-runs.js";
import { type RunFilter, runFilterSql } from "./run-filter.js";
import { SqlParams } from "./sql-params.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The windows the trends are looked at over, each with its bucket size. */
export const TREND_WINDOWS = {
  "24h": { ms: DAY_MS, bucketMs: HOUR_MS, label: "the last 24 hours", bucketLabel: "hour" },
  "7d": { ms: 7 * DAY_MS, bucketMs: 6 * HOUR_MS, label: "the last 7 days", bucketLabel: "6 hours" },
  "30d": { ms: 30 * DAY_MS, bucketMs: DAY_MS, label: "the last 30 days", bucketLabel: "day" },
} as const;

export type TrendWindow = keyof typeof TREND_WINDOWS;

export const DEFAULT_TREND_WINDOW: TrendWindow = "7d";

export function isTrendWindow(value: string): value is TrendWindow {
  return Object.hasOwn(TREND_WINDOWS, value);
}

export interface TrendsOptions {
  window: TrendWindow;
  /** Only this tenant's runs (a tenant's token). */
  tenant?: string;
  /** Only this pipeline's runs. */
  pipeline?: string;
  /** A run still running after this long is stuck. */
  stuckAfterMs: number;
  /** Most stuck and crashed runs listed. Default 50. */
  limit?: number;
  /** Epoch milliseconds; default now. */
  now?: number;
}

/** Runs that started in one bucket, or in the whole window. */
export interface TrendCounts {
  runs: number;
  /** Runs that ended, whatever their status. */
  finished: number;
  /** Failed, crashed and timed-out runs. */
  failed: number;
  /** `failed` over `finished`; null when no run has finished. */
  failureRate: number | null;
  /** Median and 95th percentile of the durations of finished runs, in seconds. */
  p50Seconds: number | null;
  p95Seconds: number | null;
}

export interface TrendBucket extends TrendCounts {
  /** Start of the bucket, epoch microseconds (UTC-aligned). */
  start: number;
}

export interface PipelineTrend {
  pipeline: string;
  /** The whole window. */
  totals: TrendCounts;
  /** Every bucket of the window, oldest first, empty ones included. */
  buckets: TrendBucket[];
}

/** A run as the lists of stuck and crashed runs show it. */
export interface ListedRun {
  runId: string;
  pipeline: string;
  /** Epoch microseconds. */
  startedAt: number;
  lastHeartbeat: number | null;
}

export interface StuckRun extends ListedRun {
  currentStage: string | null;
}

export interface CrashedRun extends ListedRun {
  statusReason: string | null;
}

export interface Trends {
  window: TrendWindow;
  /** Bucket size in microseconds. */
  bucketMicros: number;
  /** Start of the first bucket and the time the trends were read, epoch microseconds. */
  since: number;
  until: number;
  /** Pipelines with runs in the window, whatever the pipeline asked for. */
  pipelineNames: string[];
  /** Pipelines with runs in the window (only the one asked for, if any), by name. */
  pipelines: PipelineTrend[];
  /** Running runs that started more than `stuckAfterMs` ago (at any time), newest first. */
  stuck: StuckRun[];
  stuckTotal: number;
  /** Crashed runs that started in the window, newest first. */
  crashed: CrashedRun[];
  crashedTotal: number;
}

type Raw = Record<string, number | string | null>;

/**
 * Runs, failures, failure rate and duration percentiles per pipeline and per time bucket over
 * a window (hourly over 24 hours, 6-hourly over 7 days, daily over 30 days), and the runs that
 * are stuck or crashed. The first bucket starts at or before the window's start, so that every
 * bucket but the current one is whole; buckets are aligned to UTC.
 */
export async function trends(session: StoreSession, options: TrendsOptions): Promise<Trends> {
  const window = TREND_WINDOWS[options.window];
  const nowMs = options.now ?? Date.now();
  const bucketMicros = window.bucketMs * 1000;
  const until = nowMs * 1000;
  const since = Math.floor((until - window.ms * 1000) / bucketMicros) * bucketMicros;
  const limit = options.limit ?? 50;
  const selected: RunFilter = { tenant: options.tenant, pipeline: options.pipeline };

  const params = new SqlParams();
  const where = runFilterSql({ ...selected, since }, params);
  const width = params.add(bucketMicros);
  const failures = FAILURE_STATUSES.map((s) => `'${s}'`).join(", ");
  const finished = "FILTER (WHERE status <> 'running')";
  // One pass: a row per pipeline and bucket, and a row per pipeline (bucket NULL) for the window.
  const rows = await session.all<Raw>(
    `WITH selected AS (
       SELECT pipeline, status, duration_seconds,
         time_bucket(to_microseconds(${width}::BIGINT), started_at) AS b
       FROM runs WHERE ${where})
     SELECT pipeline, epoch_us(b)::DOUBLE AS bucket, grouping(b) AS whole,
       count(*)::DOUBLE AS runs,
       count(*) ${finished}::DOUBLE AS finished,
       count(*) FILTER (WHERE status IN (${failures}))::DOUBLE AS failed,
       quantile_cont(duration_seconds, 0.5) ${finished} AS p50,
       quantile_cont(duration_seconds, 0.95) ${finished} AS p95
     FROM selected
     GROUP BY GROUPING SETS ((pipeline, b), (pipeline))
     ORDER BY pipeline, b NULLS FIRST`,
    params.values,
  );

  const byPipeline = new Map<string, { totals?: TrendCounts; buckets: Map<number, TrendBucket> }>();
  for (const row of rows) {
    const name = String(row.pipeline);
    let entry = byPipeline.get(name);
    if (entry === undefined) {
      entry = { buckets: new Map() };
      byPipeline.set(name, entry);
    }
    const counts = countsOf(row);
    if (Number(row.whole) === 1) entry.totals = counts;
    else entry.buckets.set(Number(row.bucket), { start: Number(row.bucket), ...counts });
  }
  const pipelines: PipelineTrend[] = [...byPipeline].map(([name, entry]) => ({
    pipeline: name,
    totals: entry.totals ?? emptyCounts(),
    buckets: everyBucket(entry.buckets, since, until, bucketMicros),
  }));
  // Without a pipeline asked for, the pipelines just read are all those with runs in the window.
  const pipelineNames =
    options.pipeline === undefined
      ? pipelines.map((p) => p.pipeline)
      : await pipelinesOf(session, { tenant: options.tenant, since });

  const stuck = await listRuns(session, {
    ...selected,
    statuses: ["running"],
    until: (nowMs - options.stuckAfterMs) * 1000,
    limit,
  });
  const crashed = await listRuns(session, { ...selected, statuses: ["crashed"], since, limit });

  return {
    window: options.window,
    bucketMicros,
    since,
    until,
    pipelineNames,
    pipelines,
    stuck: stuck.runs.map((r) => ({ ...listed(r), currentStage: r.current_stage })),
    stuckTotal: stuck.total,
    crashed: crashed.runs.map((r) => ({ ...listed(r), statusReason: r.status_reason })),
    crashedTotal: crashed.total,
  };
}

/** The pipelines of the runs a filter selects, by name (at most `limit`). */
export async function pipelinesOf(
  session: StoreSession,
  filter: RunFilter,
  limit?: number,
): Promise<string[]> {
  const params = new SqlParams();
  const where = runFilterSql(filter, params);
  const limited = limit === undefined ? "" : ` LIMIT ${params.add(limit)}`;
  const rows = await session.all<{ pipeline: string }>(
    `SELECT DISTINCT pipeline FROM runs WHERE ${where} ORDER BY pipeline${limited}`,
    params.values,
  );
  return rows.map((r) => r.pipeline);
}

function listed(run: RunRow): ListedRun {
  return {
    runId: run.run_id,
    pipeline: run.pipeline,
    startedAt: run.started_at,
    lastHeartbeat: run.last_heartbeat,
  };
}

function numberOrNull(value: number | string | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function countsOf(row: Raw): TrendCounts {
  const finished = Number(row.finished ?? 0);
  const failed = Number(row.failed ?? 0);
  return {
    runs: Number(row.runs ?? 0),
    finished,
    failed,
    failureRate: finished > 0 ? failed / finished : null,
    p50Seconds: numberOrNull(row.p50),
    p95Seconds: numberOrNull(row.p95),
  };
}

function emptyCounts(): TrendCounts {
  return { runs: 0, finished: 0, failed: 0, failureRate: null, p50Seconds: null, p95Seconds: null };
}

/**
 * The buckets from `since` to the one holding `until`, empty ones as zero runs; a bucket the
 * store has outside that range (a run stamped in the future) is kept too.
 */
function everyBucket(
  found: Map<number, TrendBucket>,
  since: number,
  until: number,
  width: number,
): TrendBucket[] {
  const starts = new Set(found.keys());
  for (let start = since; start <= until; start += width) starts.add(start);
  return [...starts]
    .sort((a, b) => a - b)
    .map((start) => found.get(start) ?? { start, ...emptyCounts() });
}
