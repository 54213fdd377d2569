import type { Column } from "./row-columns.js";

/**
 * Rows of one table as the store thread stages them: numbers only, NaN for null, text as a
 * code into `values`. Row after row, `width` values each (see {@link stagedOffsets}), in chunks
 * of {@link CHUNK_ROWS} rows: appending a row writes into one chunk; the store thread turns
 * them into columns.
 *
 * Rows wait here between writes, up to a second. Whatever JavaScript objects they keep alive
 * that long outlive the young generation of V8's heap and are copied and promoted by its
 * collections: that cost, paid on the pipeline's thread, grows with every object held. So
 * numbers go into typed arrays outside the heap, span ids (unique per row) are parsed into
 * two numbers, and a text value is stored once per batch and column while it recurs (see
 * {@link codeOf}): the run id, status, pipeline and stage name of most rows cost nothing.
 *
 * The chunks are reused: once a batch is written, its chunks go back to a pool (see
 * {@link recycleColumns}) for the rows of the next. A buffer that grew by reallocating one
 * array copied its rows at every doubling, and each new array, allocated outside the heap,
 * counted towards V8's external memory and brought on full collections of the pipeline's heap.
 */
export interface Columns {
  count: number;
  /** Staged values per row. */
  width: number;
  /** The rows, {@link CHUNK_ROWS} to a chunk; the last chunk may be partly filled. */
  chunks: Float64Array[];
  /** Text values, once per batch and column while they recur. */
  values: string[];
}

/** Rows per chunk: a power of two. */
export const CHUNK_ROWS = 512;
const CHUNK_SHIFT = Math.log2(CHUNK_ROWS);
/**
 * Free chunks kept for reuse, in bytes at most: a full batch (the writer's 50,000 stage rows
 * and their runs, about 12 MiB), so that a pipeline writing as fast as the store takes its rows
 * fills each batch with the chunks of the one before.
 */
const POOL_BYTES = 16 * 1024 * 1024;

/** Free chunks by length. Each chunk has an ArrayBuffer of its own, so it can be moved. */
const pool = new Map<number, Float64Array[]>();
let pooledBytes = 0;

function acquireChunk(length: number): Float64Array {
  const chunk = pool.get(length)?.pop();
  if (chunk === undefined) return new Float64Array(length);
  pooledBytes -= chunk.byteLength;
  return chunk;
}

/**
 * Gives the chunks of columns that are no longer read back for reuse; the columns are left
 * empty. Only for columns nothing else refers to: rows appended later overwrite the chunks.
 */
export function recycleColumns(columns: Columns): void {
  const length = CHUNK_ROWS * columns.width;
  for (const chunk of columns.chunks) {
    // A chunk moved to another thread is detached: its length is 0.
    if (chunk.length !== length || pooledBytes + chunk.byteLength > POOL_BYTES) continue;
    let list = pool.get(length);
    if (list === undefined) {
      list = [];
      pool.set(length, list);
    }
    list.push(chunk);
    pooledBytes += chunk.byteLength;
  }
  columns.chunks = [];
  columns.count = 0;
}

export function isNumeric(column: Column): boolean {
  return (
    column.kind === "integer" ||
    column.kind === "bigint" ||
    column.kind === "double" ||
    column.kind === "time"
  );
}

/**
 * Where each column's staged values start in a row: one value for a number or a text code;
 * three for a span id: its high and low 32 bits, and the code of an id that is not 16
 * lower-case hex digits.
 */
export function stagedOffsets(spec: readonly Column[]): { offsets: number[]; width: number } {
  const offsets: number[] = [];
  let width = 0;
  for (const column of spec) {
    offsets.push(width);
    width += column.kind === "span_id" ? 3 : 1;
  }
  return { offsets, width };
}

/**
 * Every staged value of every row, one array per value of a row (see {@link stagedOffsets}):
 * the rows are read once, in order, which is several times quicker than a pass per column
 * striding across them.
 */
export function stagedColumns(columns: Columns): Float64Array[] {
  const { count, width, chunks } = columns;
  const out = Array.from({ length: width }, () => new Float64Array(count));
  for (let c = 0, r = 0; r < count; c++) {
    const chunk = chunks[c] as Float64Array;
    const end = Math.min(count, r + CHUNK_ROWS);
    for (let i = 0; r < end; r++) {
      for (let k = 0; k < width; k++, i++) (out[k] as Float64Array)[r] = chunk[i] as number;
    }
  }
  return out;
}

/** One staged value of every row: the `offset`th of each row. */
export function stagedColumn(columns: Columns, offset: number): Float64Array {
  const { count, width, chunks } = columns;
  const out = new Float64Array(count);
  for (let c = 0, r = 0; r < count; c++) {
    const chunk = chunks[c] as Float64Array;
    const end = Math.min(count, r + CHUNK_ROWS);
    for (let i = offset; r < end; r++, i += width) out[r] = chunk[i] as number;
  }
  return out;
}

/** The largest magnitude each numeric kind stores (BIGINT and timestamps: a little under 2^63). */
const LIMITS: Partial<Record<Column["kind"], number>> = {
  integer: 2_147_483_647,
  bigint: 9.2e18,
  time: 9.2e18,
};

/** Value of a lower-case hex digit, -1 for anything else. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** Eight hex digits of `id` from `at` as a number, or -1 if one is not a lower-case hex digit. */
export function hex32(id: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + 8; i++) {
    const digit = hexDigit(id.charCodeAt(i));
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/**
 * A lone surrogate as JSON.stringify escapes it (a pair it leaves as it is), after an even
 * number of backslashes: not a backslash and "ud800" that are only text.
 */
const LONE_SURROGATE_ESCAPE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

/**
 * JSON text of a value that DuckDB's JSON parser takes: it refuses a lone surrogate, which
 * becomes U+FFFD, as it does on any way into DuckDB's UTF-8.
 */
export function jsonText(value: unknown): string {
  const json = JSON.stringify(value);
  return json.includes("\\ud") ? json.replace(LONE_SURROGATE_ESCAPE, "$1\\ufffd") : json;
}

/** JSON lists (texts of {@link jsonText}) as one, their items in order. */
export function joinJsonLists(lists: readonly string[]): string {
  const items = lists.map((list) => list.slice(1, -1)).filter((items) => items.length > 0);
  return `[${items.join(",")}]`;
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, "0");
}

/**
 * Writes one row from `at`; `last` and `lastCode` remember each column's last text, `seen` the
 * codes of the texts of each column so far (see {@link codeOf}).
 */
type Encode = (
  data: Float64Array,
  values: string[],
  last: (string | undefined)[],
  lastCode: number[],
  seen: Map<string, number>[],
  row: object,
  at: number,
) => void;

/** Distinct texts a column remembers the codes of; past this, it starts again. */
const SEEN_TEXTS = 256;

/**
 * The code of a text that is not the one before it in its column: the code it had when it was
 * last seen in the column, else a new one. Stage names, statuses and pipelines come round again
 * and again but seldom twice in a row; each is kept once per batch, not once a row, which keeps
 * the list of texts, and the dictionary DuckDB builds from it, small.
 */
function codeOf(seen: Map<string, number>, values: string[], value: string): number {
  let code = seen.get(value);
  if (code === undefined) {
    code = values.push(value) - 1;
    if (seen.size >= SEEN_TEXTS) seen.clear();
    seen.set(value, code);
  }
  return code;
}
type Decode = (data: Float64Array, values: string[], at: number) => object;

/**
 * A row encoder and decoder specialised to a column list. Column names are the snake_case
 * identifiers of the row types, so they are safe to write into code; the compiled functions
 * read and write fields by name, which generic loops over names cannot do as fast.
 */
function compile(spec: readonly Column[]): { encode: Encode; decode: Decode } {
  const { offsets } = stagedOffsets(spec);
  const encode: string[] = [];
  const decode: string[] = [];
  spec.forEach((column, index) => {
    const name = column.name;
    if (!/^[a-z_][a-z0-9_]*$/.test(name))
      throw new Error(`column name ${name} is not an identifier`);
    const at = (k = 0) => `d[at + ${(offsets[index] as number) + k}]`;
    const code = (value: string) =>
      `if (${value} == null) ${at()} = NaN;
      else { if (${value} !== last[${index}]) { last[${index}] = ${value}; lastCode[${index}] = codeOf(seen[${index}], v, ${value}); }
        ${at()} = lastCode[${index}]; }`;
    const text = (expression: string) =>
      `${name}: Number.isNaN(${at()}) ? null : ${expression.replace("$", `v[${at()}]`)},`;
    if (isNumeric(column)) {
      // Clamped to what the column's SQL type holds: one value out of range would otherwise
      // make the store refuse the whole batch.
      const limit = LIMITS[column.kind] ?? Number.MAX_VALUE;
      encode.push(
        `${at()} = typeof row.${name} === "number" ? Math.min(Math.max(row.${name}, ${-limit}), ${limit}) : NaN;`,
      );
      decode.push(`${name}: Number.isNaN(${at()}) ? null : ${at()},`);
    } else if (column.kind === "span_id") {
      encode.push(`{ const id = row.${name};
        const hi = typeof id === "string" && id.length === 16 ? hex32(id, 0) : -1;
        const lo = hi < 0 ? -1 : hex32(id, 8);
        if (lo >= 0) { ${at(0)} = hi; ${at(1)} = lo; ${at(2)} = NaN; }
        else { ${at(0)} = NaN; ${at(1)} = NaN; ${at(2)} = id == null ? NaN : v.push(String(id)) - 1; } }`);
      decode.push(`${name}: Number.isNaN(${at(0)})
        ? (Number.isNaN(${at(2)}) ? null : v[${at(2)}])
        : hex8(${at(0)}) + hex8(${at(1)}),`);
    } else if (column.kind === "list" || column.kind === "json") {
      encode.push(`{ const x = row.${name} == null ? null : jsonText(row.${name}); ${code("x")} }`);
      decode.push(text("JSON.parse($)"));
    } else {
      encode.push(`{ const x = row.${name}; ${code("x")} }`);
      decode.push(text("$"));
    }
  });
  const encodeBody = `return function encode(d, v, last, lastCode, seen, row, at) {\n${encode.join("\n")}\n};`;
  const decodeBody = `return function decode(d, v, at) { return {\n${decode.join("\n")}\n}; };`;
  return {
    encode: new Function("hex32", "codeOf", "jsonText", encodeBody)(
      hex32,
      codeOf,
      jsonText,
    ) as Encode,
    decode: new Function("hex8", decodeBody)(hex8) as Decode,
  };
}

const compiled = new WeakMap<readonly Column[], { encode: Encode; decode: Decode }>();

function codecOf(spec: readonly Column[]): { encode: Encode; decode: Decode } {
  let codec = compiled.get(spec);
  if (codec === undefined) {
    codec = compile(spec);
    compiled.set(spec, codec);
  }
  return codec;
}

/** Rows appended one at a time into chunks, taken all at once. */
export class ColumnBuffer {
  private chunks: Float64Array[] = [];
  /** The chunk rows are appended to, once it has one. */
  private chunk: Float64Array = new Float64Array(0);
  private values: string[] = [];
  private readonly width: number;
  private readonly last: (string | undefined)[];
  private readonly lastCode: number[];
  private readonly seen: Map<string, number>[];
  private rows = 0;
  private readonly encode: Encode;

  constructor(readonly spec: readonly Column[]) {
    this.encode = codecOf(spec).encode;
    this.width = stagedOffsets(spec).width;
    this.last = spec.map(() => undefined);
    this.lastCode = spec.map(() => -1);
    this.seen = spec.map(() => new Map());
  }

  get count(): number {
    return this.rows;
  }

  append(row: object): void {
    const at = this.rows & (CHUNK_ROWS - 1);
    if (at === 0) {
      this.chunk = acquireChunk(CHUNK_ROWS * this.width);
      this.chunks.push(this.chunk);
    }
    this.encode(this.chunk, this.values, this.last, this.lastCode, this.seen, row, at * this.width);
    this.rows += 1;
  }

  /** The rows so far, handed over, not copied; the buffer starts empty again. */
  take(): Columns {
    const columns: Columns = {
      count: this.rows,
      width: this.width,
      chunks: this.chunks,
      values: this.values,
    };
    this.rows = 0;
    this.chunks = [];
    this.values = [];
    this.last.fill(undefined);
    this.lastCode.fill(-1);
    for (const seen of this.seen) seen.clear();
    return columns;
  }
}

/** Rows as columns. */
export function columnsOf(spec: readonly Column[], rows: readonly object[]): Columns {
  const buffer = new ColumnBuffer(spec);
  for (const row of rows) buffer.append(row);
  return buffer.take();
}

/** Columns back as row objects. */
export function rowsOf<Row>(spec: readonly Column[], columns: Columns): Row[] {
  const { decode } = codecOf(spec);
  const rows: Row[] = [];
  const { chunks, values, width } = columns;
  for (let r = 0; r < columns.count; r++) {
    const chunk = chunks[r >> CHUNK_SHIFT] as Float64Array;
    rows.push(decode(chunk, values, (r & (CHUNK_ROWS - 1)) * width) as Row);
  }
  return rows;
}

export function emptyColumns(spec: readonly Column[]): Columns {
  return columnsOf(spec, []);
}

/** The buffers a message can move to another thread instead of copying. */
export function transferables(...batches: Columns[]): ArrayBuffer[] {
  return batches.flatMap((b) => b.chunks.map((chunk) => chunk.buffer as ArrayBuffer));
}
