import { DOUBLE, DuckDBDataChunk, DuckDBTableFunction, VARCHAR } from "@duckdb/node-api";
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

/** What a connection has staged for the write under way, and made to stage writes in. */
export class StagingState {
  /** The parts of the write under way, by name. */
  readonly parts = new Map<string, StagedPart>();
  /** Whether the function that reads {@link parts} is registered on the connection. */
  functionRegistered = false;
  /** The parts whose temp table the connection has made. */
  readonly tables = new Set<string>();
}

interface StagedPart {
  /** The staged columns' names (see {@link stagedNames}). */
  names: readonly string[];
  columns: readonly Float64Array[];
  count: number;
}

/** The table function through which a connection's statements read the rows it staged. */
const STAGED_FUNCTION = "runtrail_staged";

/** The column giving each staged row's position in its part, from 0. */
export const STAGED_POSITION = "runtrail_pos";

/**
 * How a connection hands the columns of a write to DuckDB.
 * - `function`: the table function `runtrail_staged` copies them into DuckDB's vectors as the
 *   statements read them, a chunk at a time, each chunk a call back to the connection's thread.
 *   For a thread that waits while its writes run (the store thread): the least work.
 * - `tables`: they are appended to temp tables on the connection's thread before the
 *   statements run, and emptied by the write. For a thread busy between its trips to DuckDB
 *   (a server's event loop, reading and decoding requests), where each call back would wait
 *   its turn behind that work: the OTLP benchmark took about a tenth fewer spans a second.
 */
export type Staging = "function" | "tables";

/** The name of the temp table that holds the rows staged as `part` (staging `tables`). */
function stagingTable(part: string): string {
  return `runtrail_staged_${part}`;
}

/** The rows staged as `part`, as a table for a statement's FROM. */
export function stagedSource(staging: Staging, part: string): string {
  return staging === "function"
    ? `${STAGED_FUNCTION}('${part}')`
    : `temp.main.${stagingTable(part)}`;
}

/** The position column's values for `rows` rows from row `at`. */
function positions(at: number, rows: number): Float64Array {
  return Float64Array.from({ length: rows }, (_, i) => at + i);
}

interface ScanState {
  part: StagedPart;
  /** The part's columns each output column is, by index; `names.length` is the position. */
  columns: number[];
  at: number;
}

/**
 * The table function that hands a connection's staged parts to DuckDB: the columns of each
 * part as DOUBLE columns, plus {@link STAGED_POSITION}, a chunk of {@link CHUNK_ROWS} rows at
 * a time copied from the part's arrays. Rows read this way cost DuckDB no table: appended to a
 * temp table and scanned back, they cost about a third of a write.
 */
function stagedFunction(parts: ReadonlyMap<string, StagedPart>): DuckDBTableFunction {
  return DuckDBTableFunction.create({
    name: STAGED_FUNCTION,
    parameterTypes: [VARCHAR],
    supportsProjectionPushdown: true,
    bindFunction: (info) => {
      const name = String(info.getParameter(0));
      const part = parts.get(name);
      if (part === undefined) {
        info.setError(`no rows are staged as ${name} on this connection`);
        return;
      }
      for (const column of part.names) info.addResultColumn(column, DOUBLE);
      info.addResultColumn(STAGED_POSITION, DOUBLE);
      info.setBindData(part);
      info.setCardinality(part.count, true);
    },
    initFunction: (info) => {
      const state: ScanState = {
        part: info.getBindData() as StagedPart,
        columns: info.getColumnIndexes(),
        at: 0,
      };
      info.setInitData(state);
      // A thread per chunk, as many as DuckDB has: each takes the next chunk in turn.
      info.setMaxThreads(Math.max(1, Math.ceil(state.part.count / CHUNK_ROWS)));
    },
    mainFunction: (info, output) => {
      try {
        const state = info.getInitData() as ScanState;
        const { part, columns } = state;
        const rows = Math.min(CHUNK_ROWS, part.count - state.at);
        output.rowCount = rows;
        for (let k = 0; k < columns.length; k++) {
          const source = part.columns[columns[k] as number];
          const values = source?.subarray(state.at, state.at + rows) ?? positions(state.at, rows);
          copyNumbers(output, k, values);
        }
        state.at += rows;
      } catch (error) {
        info.setError(`staged rows could not be read: ${(error as Error).message}`);
      }
    },
  });
}

/**
 * Stages columns for the statements of a write on this connection, which read them from
 * {@link stagedSource}: numbers as they are, text as codes into `values`, to which the batch's
 * own values are added. Staged through the function, nothing is copied to DuckDB until a
 * statement reads them; through tables, they are appended to the part's temp table (made by
 * the connection's first write of the part), on this thread, with no trip to DuckDB's.
 * The write ends with {@link emptyStaged}'s statements, then {@link unstage}; a write that
 * fails, with {@link unstageFailed}.
 */
export async function stageColumns(
  session: StoreSession,
  part: string,
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
  const names = spec.flatMap(stagedNames);
  const state = session.staged;
  state.parts.set(part, { names, columns, count: batch.count });
  if (session.staging === "function") {
    if (!state.functionRegistered) {
      session.connection.registerTableFunction(stagedFunction(state.parts));
      state.functionRegistered = true;
    }
    return;
  }
  if (!state.tables.has(part)) {
    const columnsSql = [...names, STAGED_POSITION].map((n) => `${n} DOUBLE`).join(", ");
    await session.script([`CREATE OR REPLACE TEMP TABLE ${stagingTable(part)} (${columnsSql})`]);
    state.tables.add(part);
  }
  await appendChunks(session, stagingTable(part), [...columns, null], batch.count);
}

/** Appends `columns` (null: the position) to the temp table `table`, a chunk at a time. */
async function appendChunks(
  session: StoreSession,
  table: string,
  columns: readonly (Float64Array | null)[],
  count: number,
): Promise<void> {
  if (count === 0) return;
  const appender = await session.connection.createAppender(table, "main", "temp");
  try {
    const types = columns.map(() => DOUBLE);
    for (let at = 0; at < count; at += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, count - at);
      const chunk = DuckDBDataChunk.create(types, rows);
      for (const [k, column] of columns.entries()) {
        copyNumbers(chunk, k, column?.subarray(at, at + rows) ?? positions(at, rows));
      }
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

/** Statements that empty what a write staged in tables: the last of its transaction. */
export function emptyStaged(session: StoreSession): string[] {
  if (session.staging === "function") return [];
  return [...session.staged.parts.keys()].map(
    (part) => `DELETE FROM ${stagedSource("tables", part)}`,
  );
}

/** Lets go of the columns a write staged, once it is committed. */
export function unstage(session: StoreSession): void {
  session.staged.parts.clear();
}

/**
 * Lets go of the columns a write that failed staged: rows left in a table would be written by
 * the next write, so the tables are emptied, or made anew by the next write if that fails.
 */
export async function unstageFailed(session: StoreSession): Promise<void> {
  const emptied = emptyStaged(session);
  const { parts, tables } = session.staged;
  const staged = [...parts.keys()];
  parts.clear();
  if (emptied.length === 0) return;
  await session.script(emptied).catch(() => {
    for (const part of staged) tables.delete(part);
  });
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
