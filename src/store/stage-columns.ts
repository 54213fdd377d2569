import { DOUBLE, DuckDBDataChunk, VARCHAR } from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";
import { type Columns, isNumeric, stagedColumn, stagedOffsets } from "./column-batch.js";
import type { Column } from "./row-columns.js";
import type { StoreSession } from "./store-session.js";

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
const utf8 = new TextEncoder();

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
 * The staged columns of a column, text codes shifted by `offset`: the write's list of values
 * holds those of earlier batches first.
 */
function stagedValues(column: Column, at: number, batch: Columns, offset: number): Float64Array[] {
  const value = (k: number, shift: boolean) => {
    const out = stagedColumn(batch, at + k);
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
  const bytes = Math.ceil(values.length / 64) * 8;
  let mask: Uint8Array | undefined;
  if (values.every(Number.isNaN)) {
    mask = new Uint8Array(bytes);
  } else {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isNaN(values[i] as number)) continue;
      mask ??= new Uint8Array(bytes).fill(0xff);
      mask[i >> 3] = (mask[i >> 3] as number) & ~(1 << (i & 7));
    }
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

/**
 * Stages columns into a temp table of DOUBLE columns (see {@link stagedNames}): numbers as
 * they are, text as codes into `values`, to which the batch's own values are added. Whole
 * columns are copied into DuckDB vectors.
 */
export async function stageColumns(
  session: StoreSession,
  table: string,
  spec: readonly Column[],
  batch: Columns,
  values: string[],
): Promise<void> {
  const names = spec.flatMap(stagedNames);
  await session.run(
    `CREATE OR REPLACE TEMP TABLE ${table} (${names.map((n) => `${n} DOUBLE`).join(", ")})`,
  );
  const offset = values.length;
  for (const value of batch.values) values.push(value);
  const { offsets } = stagedOffsets(spec);
  const columns = spec.flatMap((column, i) =>
    stagedValues(column, offsets[i] as number, batch, offset),
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
    names.map(() => DOUBLE),
  );
}

/** Stages the text values of a write as a temp table (code, value). */
export async function stageValues(
  session: StoreSession,
  table: string,
  values: readonly string[],
): Promise<void> {
  await session.run(`CREATE OR REPLACE TEMP TABLE ${table} (code DOUBLE, value VARCHAR)`);
  await appendChunks(
    session,
    table,
    values.length,
    (chunk, offset, rows) => {
      const codes = new Float64Array(rows);
      for (let i = 0; i < rows; i++) codes[i] = offset + i;
      copyNumbers(chunk, 0, codes);
      const vector = duckdb.data_chunk_get_vector(chunk.chunk, 1);
      for (let i = 0; i < rows; i++) {
        const value = values[offset + i] as string;
        // A C string ends at the first NUL: a value holding one goes with its length.
        if (value.includes("\0"))
          duckdb.vector_assign_string_element_len(vector, i, utf8.encode(value));
        else duckdb.vector_assign_string_element(vector, i, value);
      }
    },
    [DOUBLE, VARCHAR],
  );
}
