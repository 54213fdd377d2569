import type { StoreSession } from "../store/store-session.js";
import { runFilterSql } from "./run-filter.js";
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

/** Statuses that count as failures: the run ended in an error, was killed or ran out of time. */
export const FAILURE_STATUSES = ["failed", "crashed", "timed_out"] as const;

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

export interface StuckRun {
  runId: string;
  pipeline: string;
  /** Epoch microseconds. */
  startedAt: number;
  lastHeartbeat: number | null;
  currentStage: string | null;
}

export interface CrashedRun {
  runId: string;
  pipeline: string;
  /** Epoch microseconds. */
  startedAt: number;
  lastHeartbeat: number | null;
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
  const tenant = options.tenant !== undefined ? { tenant: options.tenant } : {};
  const pipeline = options.pipeline !== undefined ? { pipeline: options.pipeline } : {};

  const names = new SqlParams();
  const namesWhere = runFilterSql({ ...tenant, since }, names);
  const pipelineNames = (
    await session.all<{ pipeline: string }>(
      `SELECT DISTINCT pipeline FROM runs WHERE ${namesWhere} ORDER BY pipeline`,
      names.values,
    )
  ).map((r) => r.pipeline);

  const params = new SqlParams();
  const where = runFilterSql({ ...tenant, ...pipeline, since }, params);
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

  const stuckParams = new SqlParams();
  const stuckWhere = runFilterSql({ ...tenant, ...pipeline, statuses: ["running"] }, stuckParams);
  const stuckBefore = stuckParams.add((nowMs - options.stuckAfterMs) * 1000);
  const stuckRows = await session.all<Raw>(
    `SELECT run_id::VARCHAR AS run_id, pipeline, current_stage,
       epoch_us(started_at)::DOUBLE AS started_at,
       epoch_us(last_heartbeat)::DOUBLE AS last_heartbeat,
       count(*) OVER ()::DOUBLE AS total
     FROM runs WHERE ${stuckWhere} AND started_at < make_timestamptz(${stuckBefore}::BIGINT)
     ORDER BY started_at DESC, run_id DESC LIMIT ${stuckParams.add(limit)}`,
    stuckParams.values,
  );

  const crashedParams = new SqlParams();
  const crashedWhere = runFilterSql(
    { ...tenant, ...pipeline, since, statuses: ["crashed"] },
    crashedParams,
  );
  const crashedRows = await session.all<Raw>(
    `SELECT run_id::VARCHAR AS run_id, pipeline, status_reason,
       epoch_us(started_at)::DOUBLE AS started_at,
       epoch_us(last_heartbeat)::DOUBLE AS last_heartbeat,
       count(*) OVER ()::DOUBLE AS total
     FROM runs WHERE ${crashedWhere}
     ORDER BY started_at DESC, run_id DESC LIMIT ${crashedParams.add(limit)}`,
    crashedParams.values,
  );

  return {
    window: options.window,
    bucketMicros,
    since,
    until,
    pipelineNames,
    pipelines,
    stuck: stuckRows.map((r) => ({
      runId: String(r.run_id),
      pipeline: String(r.pipeline),
      startedAt: Number(r.started_at),
      lastHeartbeat: numberOrNull(r.last_heartbeat),
      currentStage: r.current_stage === null ? null : String(r.current_stage),
    })),
    stuckTotal: Number(stuckRows[0]?.total ?? 0),
    crashed: crashedRows.map((r) => ({
      runId: String(r.run_id),
      pipeline: String(r.pipeline),
      startedAt: Number(r.started_at),
      lastHeartbeat: numberOrNull(r.last_heartbeat),
      statusReason: r.status_reason === null ? null : String(r.status_reason),
    })),
    crashedTotal: Number(crashedRows[0]?.total ?? 0),
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
