import { DOUBLE, DuckDBDataChunk } from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";
import { type Columns, isNumeric, jsonText, stagedColumns, stagedOffsets } from "./column-batch.js";
import type { Column } from "./row-columns.js";
import type { StoreSession } from "./store-session.js";

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;

/**
 * The staged form of a column: one or more DOUBLE columns (see `Columns`). Span ids, unique per
 * row, travel as two 32-bit halves and, for a malformed one, a text code.
 */
export function stagedNames(column: Column): string[] {
  const name = column.name;
  if (column.kind === "span_id") return [`${name}_hi`, `${name}_lo`, `${name}_text`];
  return [name];
}

/**
 * The staged columns of a column, from the batch's (`staged`, by staged offset), text codes
 * shifted by `offset`: the write's list of values holds those of earlier batches first.
 */
function stagedValues(
  column: Column,
  at: number,
  staged: Float64Array[],
  offset: number,
): Float64Array[] {
  const value = (k: number, shift: boolean) => {
    const out = staged[at + k] as Float64Array;
    if (shift && offset !== 0)
      for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + offset;
    return out;
  };
  if (isNumeric(column)) return [value(0, false)];
  if (column.kind !== "span_id") return [value(0, true)];
  return [value(0, false), value(1, false), value(2, true)];
}

/** Copies numbers into a DOUBLE vector in one go; NaN becomes null. */
function copyNumbers(chunk: DuckDBDataChunk, column: number, values: Float64Array): void {
  const vector = duckdb.data_chunk_get_vector(chunk.chunk, column);
  duckdb.copy_data_to_vector(
    vector,
    0,
    values.buffer as ArrayBuffer,
    values.byteOffset,
    values.byteLength,
  );
  // DuckDB's validity is a bit per row in 64-bit little-endian words: bytes in order.
  let mask: Uint8Array | undefined;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isNaN(values[i])) continue;
    mask ??= new Uint8Array(Math.ceil(values.length / 64) * 8).fill(0xff);
    mask[i >> 3] = (mask[i >> 3] as number) & ~(1 << (i & 7));
  }
  if (mask !== undefined) {
    duckdb.vector_ensure_validity_writable(vector);
    duckdb.copy_data_to_vector_validity(
      vector,
      0,
      mask.buffer as ArrayBuffer,
      mask.byteOffset,
      mask.byteLength,
    );
  }
}

async function appendChunks(
  session: StoreSession,
  table: string,
  count: number,
  fill: (chunk: DuckDBDataChunk, offset: number, rows: number) => void,
  types: Parameters<typeof DuckDBDataChunk.create>[0],
): Promise<void> {
  if (count === 0) return;
  const appender = await session.connection.createAppender(table, "main", "temp");
  try {
    for (let offset = 0; offset < count; offset += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, count - offset);
      const chunk = DuckDBDataChunk.create(types, rows);
      fill(chunk, offset, rows);
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

/** The statement that makes the temp table `table` for staging `spec`'s columns. */
export function stagingTable(table: string, spec: readonly Column[]): string {
  const names = spec.flatMap(stagedNames);
  return `CREATE OR REPLACE TEMP TABLE ${table} (${names.map((n) => `${n} DOUBLE`).join(", ")})`;
}

/**
 * Stages columns into the temp table {@link stagingTable} made: numbers as they are, text as
 * codes into `values`, to which the batch's own values are added. Whole columns are copied
 * into DuckDB vectors, on this thread, with no trip to DuckDB's.
 */
export async function stageColumns(
  session: StoreSession,
  table: string,
  spec: readonly Column[],
  batch: Columns,
  values: string[],
): Promise<void> {
  const offset = values.length;
  for (const value of batch.values) values.push(value);
  const { offsets } = stagedOffsets(spec);
  const staged = stagedColumns(batch);
  const columns = spec.flatMap((column, i) =>
    stagedValues(column, offsets[i] as number, staged, offset),
  );
  await appendChunks(
    session,
    table,
    batch.count,
    (chunk, offset, rows) => {
      for (const [c, values] of columns.entries()) {
        copyNumbers(chunk, c, values.subarray(offset, offset + rows));
      }
    },
    spec.flatMap(stagedNames).map(() => DOUBLE),
  );
}

/**
 * Stages the text values of a write as a temp table of one row: `v`, the list of them, a
 * value's code its index. The list travels as one JSON text, parsed by DuckDB: a value at a
 * time, each a call into DuckDB, cost several times more.
 */
export async function stageValues(
  session: StoreSession,
  table: string,
  values: readonly string[],
): Promise<void> {
  await session.run(
    `CREATE OR REPLACE TEMP TABLE ${table} AS SELECT from_json($1::VARCHAR, '["VARCHAR"]') AS v`,
    [jsonText(values)],
  );
}
