import type { RunRow, StageRow } from "../record/rows.js";

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

/** SQL that reads a column into its row-object form: numbers, strings and arrays. */
export function selectExpression(column: Column, table?: string): string {
  const ref = table ? `${table}.${column.name}` : column.name;
  switch (column.kind) {
    case "uuid":
      return `${ref}::VARCHAR AS ${column.name}`;
    case "time":
      return `epoch_us(${ref})::DOUBLE AS ${column.name}`;
    case "bigint":
    case "integer":
      return `${ref}::DOUBLE AS ${column.name}`;
    case "json":
      return `${ref}::VARCHAR AS ${column.name}`;
    default:
      return ref;
  }
}

/** The select list that reads rows of a table as row objects. */
export function selectList(cols: readonly Column[], table?: string): string {
  return cols.map((c) => selectExpression(c, table)).join(", ");
}

/** Turns a raw result row back into the row object (JSON columns parsed). */
export function fromStoredRow<Row>(cols: readonly Column[], raw: Record<string, unknown>): Row {
  for (const column of cols) {
    if (column.kind === "json") {
      const text = raw[column.name];
      raw[column.name] = typeof text === "string" ? JSON.parse(text) : null;
    }
  }
  return raw as Row;
}
