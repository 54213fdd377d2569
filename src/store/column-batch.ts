import type { Column } from "./row-columns.js";

/**
 * Rows of one table as the store thread stages them: numbers only, NaN for null, text as a
 * code into `values`. Row by row in one array (row `r` at `[r * width, (r + 1) * width)`, see
 * {@link stagedOffsets}): appending a row writes into one array; the store thread turns them
 * into columns.
 *
 * Rows wait here between writes, up to a second. Whatever JavaScript objects they keep alive
 * that long outlive the young generation of V8's heap and are copied and promoted by its
 * collections: that cost, paid on the pipeline's thread, grows with every object held. So
 * numbers go into a typed array outside the heap, span ids (unique per row) are parsed into
 * two numbers, and a text value equal to the one before it in its column is stored once: the
 * run id, status and pipeline of consecutive rows cost nothing. A stage row holds no object
 * of its own but its stage name.
 */
export interface Columns {
  count: number;
  /** Staged values per row. */
  width: number;
  data: Float64Array;
  /** Text values, once per run of equal values in a column. */
  values: string[];
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

/** One staged value of every row: the `offset`th of each row. */
export function stagedColumn(columns: Columns, offset: number): Float64Array {
  const { count, width, data } = columns;
  const out = new Float64Array(count);
  for (let r = 0, i = offset; r < count; r++, i += width) out[r] = data[i] as number;
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

function hex8(value: number): string {
  return value.toString(16).padStart(8, "0");
}

/** Writes one row from `at`; `last` and `lastCode` remember each column's last text. */
type Encode = (
  data: Float64Array,
  values: string[],
  last: (string | undefined)[],
  lastCode: number[],
  row: object,
  at: number,
) => void;
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
      else { if (${value} !== last[${index}]) { last[${index}] = ${value}; lastCode[${index}] = v.push(${value}) - 1; }
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
      encode.push(
        `{ const x = row.${name} == null ? null : JSON.stringify(row.${name}); ${code("x")} }`,
      );
      decode.push(text("JSON.parse($)"));
    } else {
      encode.push(`{ const x = row.${name}; ${code("x")} }`);
      decode.push(text("$"));
    }
  });
  const encodeBody = `return function encode(d, v, last, lastCode, row, at) {\n${encode.join("\n")}\n};`;
  const decodeBody = `return function decode(d, v, at) { return {\n${decode.join("\n")}\n}; };`;
  return {
    encode: new Function("hex32", encodeBody)(hex32) as Encode,
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

/** Rows appended one at a time into a growing array, taken all at once. */
export class ColumnBuffer {
  private data: Float64Array;
  private values: string[] = [];
  private readonly width: number;
  private readonly last: (string | undefined)[];
  private readonly lastCode: number[];
  private capacity = 0;
  private rows = 0;
  private readonly encode: Encode;

  constructor(
    readonly spec: readonly Column[],
    private readonly initialCapacity = 256,
  ) {
    this.encode = codecOf(spec).encode;
    this.width = stagedOffsets(spec).width;
    this.last = spec.map(() => undefined);
    this.lastCode = spec.map(() => -1);
    this.data = new Float64Array(0);
    this.reset();
  }

  get count(): number {
    return this.rows;
  }

  append(row: object): void {
    if (this.rows === this.capacity) this.grow();
    this.encode(this.data, this.values, this.last, this.lastCode, row, this.rows * this.width);
    this.rows += 1;
  }

  /**
   * The rows so far; the buffer starts empty again, with room for as many rows, since the next
   * interval is likely to bring as many. The array is handed over, not copied.
   */
  take(): Columns {
    const count = this.rows;
    const columns: Columns = {
      count,
      width: this.width,
      data: this.data.subarray(0, count * this.width),
      values: this.values,
    };
    this.reset(Math.max(this.initialCapacity, count));
    return columns;
  }

  private reset(capacity = this.initialCapacity): void {
    this.capacity = capacity;
    this.rows = 0;
    this.data = new Float64Array(capacity * this.width);
    this.values = [];
    this.last.fill(undefined);
    this.lastCode.fill(-1);
  }

  private grow(): void {
    this.capacity *= 2;
    const larger = new Float64Array(this.capacity * this.width);
    larger.set(this.data);
    this.data = larger;
  }
}

/** Rows as columns. */
export function columnsOf(spec: readonly Column[], rows: readonly object[]): Columns {
  const buffer = new ColumnBuffer(spec, Math.max(1, rows.length));
  for (const row of rows) buffer.append(row);
  return buffer.take();
}

/** Columns back as row objects. */
export function rowsOf<Row>(spec: readonly Column[], columns: Columns): Row[] {
  const { decode } = codecOf(spec);
  const rows: Row[] = [];
  for (let r = 0; r < columns.count; r++) {
    rows.push(decode(columns.data, columns.values, r * columns.width) as Row);
  }
  return rows;
}

export function emptyColumns(spec: readonly Column[]): Columns {
  return columnsOf(spec, []);
}

/** The buffers a message can move to another thread instead of copying. */
export function transferables(...batches: Columns[]): ArrayBuffer[] {
  return batches.map((b) => b.data.buffer as ArrayBuffer);
}
