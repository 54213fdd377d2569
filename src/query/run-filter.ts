import type { RunStatus } from "../record/run-status.js";
import type { SqlParams } from "./sql-params.js";

/** Which runs a query is about. Times are epoch microseconds. */
export interface RunFilter {
  statuses?: readonly RunStatus[];
  pipeline?: string;
  tenant?: string;
  since?: number;
  until?: number;
  minDurationSeconds?: number;
  hasError?: boolean;
}

/** The WHERE conditions of a filter, joined by AND (`TRUE` when there are none). */
export function runFilterSql(filter: RunFilter, params: SqlParams): string {
  const conditions: string[] = [];
  if (filter.statuses && filter.statuses.length > 0) {
    conditions.push(`status IN (${filter.statuses.map((s) => params.add(s)).join(", ")})`);
  }
  if (filter.pipeline !== undefined) conditions.push(`pipeline = ${params.add(filter.pipeline)}`);
  if (filter.tenant !== undefined) conditions.push(`tenant_id = ${params.add(filter.tenant)}`);
  if (filter.since !== undefined) {
    conditions.push(`started_at >= make_timestamptz(${params.add(filter.since)}::BIGINT)`);
  }
  if (filter.until !== undefined) {
    conditions.push(`started_at < make_timestamptz(${params.add(filter.until)}::BIGINT)`);
  }
  if (filter.minDurationSeconds !== undefined) {
    conditions.push(`duration_seconds >= ${params.add(filter.minDurationSeconds)}`);
  }
  if (filter.hasError === true) conditions.push("(error IS NOT NULL OR error_message IS NOT NULL)");
  if (filter.hasError === false) conditions.push("(error IS NULL AND error_message IS NULL)");
  return conditions.length > 0 ? conditions.join(" AND ") : "TRUE";
}
