import {
  DuckDBListValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBUUIDValue,
  type DuckDBValue,
} from "@duckdb/node-api";
import type { RunRow, StageRow } from "../record/rows.js";
import type { SqlParams, StoreSession } from "./store-session.js";

/** How a column travels from a row object to its table. */
export type ColumnKind =
  | "uuid"
  | "text"
  /** A span id: 16 hex digits, text in the table, two numbers on the way there. */
  | "span_id"
  | "integer"
  | "bigint"
  | "double"
  | "time"
  | "list"
  | "json";

export interface Column {
  name: string;
  kind: ColumnKind;
}

/** Columns from a spec that names every field of the row type, and only those. */
function columns<Row>(spec: Record<keyof Row & string, ColumnKind>): readonly Column[] {
  return Object.entries<ColumnKind>(spec).map(([name, kind]) => ({ name, kind }));
}

/** Every column of `runs`, in table order. A test checks this against the migrated schema. */
export const RUN_COLUMNS = columns<RunRow>({
  run_id: "uuid",
  trace_id: "text",
  span_id: "span_id",
  tenant_id: "text",
  pipeline: "text",
  service_name: "text",
  status: "text",
  status_reason: "text",
  error: "text",
  error_type: "text",
  error_message: "text",
  error_stack: "text",
  failed_stage: "text",
  input_fingerprint: "text",
  code_ref: "text",
  config_hash: "text",
  started_at: "time",
  finished_at: "time",
  duration_seconds: "double",
  deadline_at: "time",
  rows_in: "bigint",
  rows_out: "bigint",
  llm_calls: "bigint",
  tokens: "bigint",
  input_tokens: "bigint",
  output_tokens: "bigint",
  stages_expected: "integer",
  stages_completed: "integer",
  stages_executed: "list",
  stages_failed: "list",
  retry_count: "integer",
  current_stage: "text",
  metadata: "json",
  owner_host: "text",
  owner_pid: "integer",
  owner_started_at: "time",
  last_heartbeat: "time",
  resumed_from: "uuid",
  cached_from: "uuid",
  entry_point: "text",
  input_snapshot: "text",
  artifacts: "json",
});

/** Every column of `stages`, in table order. */
export const STAGE_COLUMNS = columns<StageRow>({
  run_id: "uuid",
  span_id: "span_id",
  parent_span_id: "span_id",
  name: "text",
  seq: "integer",
  attempt: "integer",
  status: "text",
  error_type: "text",
  error_message: "text",
  error_stack: "text",
  started_at: "time",
  finished_at: "time",
  duration_seconds: "double",
  rows_in: "bigint",
  rows_out: "bigint",
  llm_calls: "bigint",
  tokens: "bigint",
  input_tokens: "bigint",
  output_tokens: "bigint",
  metadata: "json",
  snapshot: "text",
  cache_key: "text",
  cached_from: "uuid",
});

/** The select list that reads whole rows of a table for {@link readRows}: the columns as stored. */
export function selectList(cols: readonly Column[]): string {
  return cols.map((c) => c.name).join(", ");
}

/**
 * Rows of `cols`, selected with {@link selectList}, as row objects: times as epoch microseconds,
 * integers as numbers, UUIDs as text, JSON parsed.
 *
 * The columns are read as stored and converted here, rather than cast in SQL: forty casts cost
 * DuckDB more to plan and run than converting one row's values costs JS (a run's lookup, about
 * 0.15 ms of CPU less).
 */
export async function readRows<Row>(
  session: StoreSession,
  cols: readonly Column[],
  sql: string,
  params?: SqlParams,
): Promise<Row[]> {
  const rows = await session.values(sql, params);
  return rows.map((values) => rowObject<Row>(cols, values));
}

/** One row's values, in the order of `cols`, as its row object. */
function rowObject<Row>(cols: readonly Column[], values: readonly DuckDBValue[]): Row {
  const row: Record<string, unknown> = {};
  for (let i = 0; i < cols.length; i++) {
    const column = cols[i] as Column;
    row[column.name] = fromStored(column, values[i] ?? null);
  }
  return row as Row;
}

function fromStored(column: Column, value: DuckDBValue): unknown {
  if (value === null) return null;
  switch (column.kind) {
    case "time":
      if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) {
        return Number(value.micros);
      }
      break;
    case "integer":
    case "bigint":
    case "double":
      if (typeof value === "bigint") return Number(value);
      if (typeof value === "number") return value;
      break;
    case "uuid":
      if (value instanceof DuckDBUUIDValue) return value.toString();
      break;
    case "json":
      return JSON.parse(String(value));
    case "list":
      if (value instanceof DuckDBListValue) return [...value.items];
      break;
    default:
      if (typeof value === "string") return value;
  }
  throw new TypeError(`column ${column.name} (${column.kind}) read as ${String(value)}`);
}
