import { DOUBLE, DuckDBDataChunk, type DuckDBType, VARCHAR } from "@duckdb/node-api";
import type { RunRow, StageRow } from "../record/rows.js";
import { type Column, RUN_COLUMNS, STAGE_COLUMNS } from "./row-columns.js";
import type { StoreSession } from "./store-session.js";

/** Rows appended in one DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;

export interface RowBatch {
  /** Run rows, at most one per run id; each is merged with the stored row. */
  runs: readonly RunRow[];
  /** Stage rows written for the first time: appended. */
  stages: readonly StageRow[];
  /** Stage rows that may be stored already (spooled, late, received twice): merged by key. */
  stagesToMerge?: readonly StageRow[];
}

function stagingType(column: Column): DuckDBType {
  switch (column.kind) {
    case "bigint":
    case "integer":
    case "double":
    case "time":
      return DOUBLE;
    default:
      return VARCHAR;
  }
}

/** From the staging column (text or double) to the table's type. */
function castFromStaging(column: Column): string {
  const name = column.name;
  switch (column.kind) {
    case "uuid":
      return `${name}::UUID AS ${name}`;
    case "time":
      return `make_timestamptz(${name}::BIGINT) AS ${name}`;
    case "bigint":
      return `${name}::BIGINT AS ${name}`;
    case "integer":
      return `${name}::INTEGER AS ${name}`;
    case "list":
      return `from_json(${name}, '["VARCHAR"]') AS ${name}`;
    case "json":
      return `${name}::JSON AS ${name}`;
    default:
      return name;
  }
}

function toStaging(column: Column, value: unknown): string | number | null {
  if (value === null || value === undefined) return null;
  switch (column.kind) {
    case "list":
    case "json":
      return JSON.stringify(value);
    default:
      return value as string | number;
  }
}

async function stage(
  session: StoreSession,
  table: string,
  cols: readonly Column[],
  rows: readonly object[],
): Promise<void> {
  const types = cols.map(stagingType);
  const ddl = cols
    .map((c, i) => `${c.name} ${types[i] === DOUBLE ? "DOUBLE" : "VARCHAR"}`)
    .join(", ");
  await session.run(`CREATE TEMP TABLE IF NOT EXISTS ${table} (${ddl})`);
  await session.run(`DELETE FROM temp.main.${table}`);
  const appender = await session.connection.createAppender(table, "main", "temp");
  try {
    for (let offset = 0; offset < rows.length; offset += CHUNK_ROWS) {
      const count = Math.min(CHUNK_ROWS, rows.length - offset);
      const values = cols.map(() => new Array<string | number | null>(count));
      for (let i = 0; i < count; i++) {
        const row = rows[offset + i] as Record<string, unknown>;
        for (let c = 0; c < cols.length; c++) {
          const column = cols[c] as Column;
          (values[c] as (string | number | null)[])[i] = toStaging(column, row[column.name]);
        }
      }
      const chunk = DuckDBDataChunk.create(types, count);
      chunk.setColumns(values);
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

function stagedSelect(cols: readonly Column[], table: string): string {
  return `SELECT ${cols.map(castFromStaging).join(", ")} FROM temp.main.${table}`;
}

function earliest(rows: readonly { started_at: number }[]): number {
  let min = Number.POSITIVE_INFINITY;
  for (const row of rows) if (row.started_at < min) min = row.started_at;
  return min;
}

const RUN_SET = RUN_COLUMNS.filter((c) => c.name !== "run_id")
  .map((c) => `${c.name} = s.${c.name}`)
  .join(", ");
const RUN_NAMES = RUN_COLUMNS.map((c) => c.name).join(", ");
const RUN_VALUES = RUN_COLUMNS.map((c) => `s.${c.name}`).join(", ");

/**
 * A run row replaces the stored one, except that a `running` row never replaces a finished
 * one: only a crashed run comes back to life, when its owner shows it is still going.
 * `started_at` bounds the scan: runs are appended in start order, so DuckDB's min/max zone maps
 * skip the older row groups.
 */
const MERGE_RUNS = `
MERGE INTO runs USING (${stagedSelect(RUN_COLUMNS, "runtrail_staged_runs")}) AS s
ON runs.run_id = s.run_id AND runs.started_at >= make_timestamptz($1::BIGINT)
WHEN MATCHED AND NOT (s.status = 'running' AND runs.status NOT IN ('running', 'crashed'))
  THEN UPDATE SET ${RUN_SET}
WHEN NOT MATCHED THEN INSERT (${RUN_NAMES}) VALUES (${RUN_VALUES})`;

const STAGE_NAMES = STAGE_COLUMNS.map((c) => c.name).join(", ");
const STAGE_VALUES = STAGE_COLUMNS.map((c) => `s.${c.name}`).join(", ");
const STAGE_SET = STAGE_COLUMNS.filter((c) => c.name !== "run_id" && c.name !== "span_id")
  .map((c) => `${c.name} = s.${c.name}`)
  .join(", ");
const STAGED_STAGES = stagedSelect(STAGE_COLUMNS, "runtrail_staged_stages");

const APPEND_STAGES = `INSERT INTO stages (${STAGE_NAMES}) ${STAGED_STAGES}`;

const MERGE_STAGES = `
MERGE INTO stages USING (${STAGED_STAGES}) AS s
ON stages.run_id = s.run_id AND stages.span_id = s.span_id
  AND stages.started_at >= make_timestamptz($1::BIGINT)
WHEN MATCHED THEN UPDATE SET ${STAGE_SET}
WHEN NOT MATCHED THEN INSERT (${STAGE_NAMES}) VALUES (${STAGE_VALUES})`;

/**
 * Writes a batch in one transaction: all of it or none. Rows are staged in temp tables with
 * DuckDB data chunks (numbers as typed arrays), then merged by SQL.
 */
export async function writeRows(session: StoreSession, batch: RowBatch): Promise<void> {
  const { runs, stages } = batch;
  const stagesToMerge = batch.stagesToMerge ?? [];
  await session.transaction(async () => {
    if (runs.length > 0) {
      await stage(session, "runtrail_staged_runs", RUN_COLUMNS, runs);
      await session.run(MERGE_RUNS, [earliest(runs)]);
    }
    if (stagesToMerge.length > 0) {
      await stage(session, "runtrail_staged_stages", STAGE_COLUMNS, stagesToMerge);
      await session.run(MERGE_STAGES, [earliest(stagesToMerge)]);
    }
    if (stages.length > 0) {
      await stage(session, "runtrail_staged_stages", STAGE_COLUMNS, stages);
      await session.run(APPEND_STAGES);
    }
  });
}
