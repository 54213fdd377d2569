import { FAILURE_STATUSES, RUN_STATUSES, type RunStatus } from "../record/run-status.js";
import type { StoreSession } from "../store/store-session.js";
import { type RunFilter, runFilterSql } from "./run-filter.js";
import { SqlParams } from "./sql-params.js";

export type StatsGroup = "pipeline" | "stage" | "tenant";

export interface StatsOptions extends RunFilter {
  groupBy: StatsGroup;
  /** A run still running after this long is stuck. */
  stuckAfterMs: number;
  now?: number;
}

export interface GroupStats {
  /** Pipeline, stage or tenant name (`null` for runs without a tenant). */
  key: string | null;
  runs: number;
  byStatus: Record<RunStatus, number>;
  /** Failed, timed out and crashed runs over finished runs. */
  failureRate: number | null;
  p50Seconds: number | null;
  p95Seconds: number | null;
  p99Seconds: number | null;
  llmCalls: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  rowsIn: number;
  rowsOut: number;
  stuck: number;
}

/**
 * A group's statistics as JSON gives them, with snake_case names as every JSON of runtrail's:
 * `runtrail stats --json` prints these, and the API's `GET /api/stats` answers its groups so.
 */
export interface GroupStatsJson {
  key: string | null;
  runs: number;
  by_status: Record<RunStatus, number>;
  failure_rate: number | null;
  p50_seconds: number | null;
  p95_seconds: number | null;
  p99_seconds: number | null;
  llm_calls: number;
  tokens: number;
  input_tokens: number;
  output_tokens: number;
  rows_in: number;
  rows_out: number;
  stuck: number;
}

export function groupStatsJson(group: GroupStats): GroupStatsJson {
  return {
    key: group.key,
    runs: group.runs,
    by_status: group.byStatus,
    failure_rate: group.failureRate,
    p50_seconds: group.p50Seconds,
    p95_seconds: group.p95Seconds,
    p99_seconds: group.p99Seconds,
    llm_calls: group.llmCalls,
    tokens: group.tokens,
    input_tokens: group.inputTokens,
    output_tokens: group.outputTokens,
    rows_in: group.rowsIn,
    rows_out: group.rowsOut,
    stuck: group.stuck,
  };
}

/** The aggregate select list over rows of `runs` or `stages` under alias `t`. */
function aggregates(t: string): string {
  const statusCounts = RUN_STATUSES.map(
    (s) => `count(*) FILTER (WHERE ${t}.status = '${s}')::DOUBLE AS "${s}"`,
  ).join(", ");
  const finished = `FILTER (WHERE ${t}.status <> 'running')`;
  const total = (column: string) => `coalesce(sum(${t}.${column}), 0)::DOUBLE AS ${column}`;
  return [
    "count(*)::DOUBLE AS runs",
    statusCounts,
    `quantile_cont(${t}.duration_seconds, 0.5) ${finished} AS p50`,
    `quantile_cont(${t}.duration_seconds, 0.95) ${finished} AS p95`,
    `quantile_cont(${t}.duration_seconds, 0.99) ${finished} AS p99`,
    ...["llm_calls", "tokens", "input_tokens", "output_tokens", "rows_in", "rows_out"].map(total),
  ].join(",\n  ");
}

type RawStats = Record<string, number | string | null>;

/**
 * Counts by status, failure rate, duration percentiles, LLM calls, tokens and rows, per
 * pipeline, per stage or per tenant, over the runs a filter selects.
 */
export async function runStats(
  session: StoreSession,
  options: StatsOptions,
): Promise<GroupStats[]> {
  const params = new SqlParams();
  const where = runFilterSql(options, params);
  const stuck = () => {
    const before = params.add(((options.now ?? Date.now()) - options.stuckAfterMs) * 1000);
    return `count(*) FILTER (WHERE status = 'running' AND started_at < make_timestamptz(${before}::BIGINT))::DOUBLE AS stuck`;
  };
  const sql =
    options.groupBy === "stage"
      ? `WITH selected AS (SELECT run_id, started_at AS run_started_at FROM runs WHERE ${where})
         SELECT s.name AS key, ${aggregates("s")}, 0::DOUBLE AS stuck
         FROM stages s JOIN selected r ON s.run_id = r.run_id AND s.started_at >= r.run_started_at
         GROUP BY s.name ORDER BY s.name`
      : `SELECT ${options.groupBy === "tenant" ? "r.tenant_id" : "r.pipeline"} AS key, ${aggregates("r")}, ${stuck()}
         FROM runs r WHERE ${where} GROUP BY 1 ORDER BY 1 NULLS FIRST`;
  const rows = await session.all<RawStats>(sql, params.values);
  return rows.map(toGroupStats);
}

function toGroupStats(row: RawStats): GroupStats {
  const n = (key: string) => Number(row[key] ?? 0);
  const q = (key: string) =>
    row[key] === null || row[key] === undefined ? null : Number(row[key]);
  const byStatus = Object.fromEntries(RUN_STATUSES.map((s) => [s, n(s)])) as Record<
    RunStatus,
    number
  >;
  const finished = n("runs") - byStatus.running;
  const failures = FAILURE_STATUSES.reduce((sum, status) => sum + byStatus[status], 0);
  return {
    key: row.key === null || row.key === undefined ? null : String(row.key),
    runs: n("runs"),
    byStatus,
    failureRate: finished > 0 ? failures / finished : null,
    p50Seconds: q("p50"),
    p95Seconds: q("p95"),
    p99Seconds: q("p99"),
    llmCalls: n("llm_calls"),
    tokens: n("tokens"),
    inputTokens: n("input_tokens"),
    outputTokens: n("output_tokens"),
    rowsIn: n("rows_in"),
    rowsOut: n("rows_out"),
    stuck: n("stuck"),
  };
}
