import { DOUBLE, DuckDBDataChunk, VARCHAR } from "@duckdb/node-api";
import duckdb from "@duckdb/node-bindings";
import type { Columns } from "./column-batch.js";
import type { Column } from "./row-columns.js";
import type { StoreSession } from "./store-session.js";

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
const utf8 = new TextEncoder();

/** Value of a lower-case hex digit, -1 for anything else. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** Eight hex digits of `id` from `at` as a number, or -1 if one is not a hex digit. */
function hex32(id: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + 8; i++) {
    const digit = hexDigit(id.charCodeAt(i));
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/**
 * The text values of a write: text columns travel to DuckDB as numeric codes into this list.
 * Handing DuckDB a string costs a native call per string, while a column of numbers is copied
 * in one go; and most text in runs and stages (run ids, stage names, statuses) repeats, so it
 * is stored once.
 */
export class Dictionary {
  private readonly codes = new Map<string, number>();
  readonly values: string[] = [];

  /** Codes of a text column, NaN for null; repeated values share a code. */
  encode(texts: readonly (string | null)[], count: number): Float64Array {
    const codes = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const text = texts[i];
      if (text === null || text === undefined) {
        codes[i] = Number.NaN;
        continue;
      }
      let code = this.codes.get(text);
      if (code === undefined) {
        code = this.add(text);
        this.codes.set(text, code);
      }
      codes[i] = code;
    }
    return codes;
  }

  /** A value that does not repeat, stored without looking for an earlier copy. */
  add(text: string): number {
    this.values.push(text);
    return this.values.length - 1;
  }
}

/**
 * The staged form of a column: one or more DOUBLE columns. Span ids, unique per row, travel as
 * two 32-bit halves (and, for a malformed one, a dictionary code).
 */
export function stagedNames(column: Column): string[] {
  const name = column.name;
  if (column.kind === "span_id") return [`${name}_hi`, `${name}_lo`, `${name}_text`];
  return [name];
}

function stagedValues(
  column: Column,
  index: number,
  batch: Columns,
  dictionary: Dictionary,
): Float64Array[] {
  const numbers = batch.numbers[index];
  if (numbers) return [numbers];
  const texts = batch.texts[index] ?? [];
  if (column.kind !== "span_id") return [dictionary.encode(texts, batch.count)];
  const high = new Float64Array(batch.count).fill(Number.NaN);
  const low = new Float64Array(batch.count).fill(Number.NaN);
  const other = new Float64Array(batch.count).fill(Number.NaN);
  for (let i = 0; i < batch.count; i++) {
    const id = texts[i];
    if (id === null || id === undefined) continue;
    const hi = id.length === 16 ? hex32(id, 0) : -1;
    const lo = hi < 0 ? -1 : hex32(id, 8);
    if (lo < 0) {
      other[i] = dictionary.add(id);
    } else {
      high[i] = hi;
      low[i] = lo;
    }
  }
  return [high, low, other];
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
 * they are, text as codes into the dictionary. Whole columns are copied into DuckDB vectors.
 */
export async function stageColumns(
  session: StoreSession,
  table: string,
  spec: readonly Column[],
  batch: Columns,
  dictionary: Dictionary,
): Promise<void> {
  const names = spec.flatMap(stagedNames);
  await session.run(
    `CREATE OR REPLACE TEMP TABLE ${table} (${names.map((n) => `${n} DOUBLE`).join(", ")})`,
  );
  const columns = spec.flatMap((column, i) => stagedValues(column, i, batch, dictionary));
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

/** Stages the dictionary as a temp table (code, value). */
export async function stageDictionary(
  session: StoreSession,
  table: string,
  dictionary: Dictionary,
): Promise<void> {
  await session.run(`CREATE OR REPLACE TEMP TABLE ${table} (code DOUBLE, value VARCHAR)`);
  const values = dictionary.values;
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
