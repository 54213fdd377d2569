import type { Column } from "./row-columns.js";

/**
 * Rows of one table, column by column: numbers in typed arrays (NaN for null), text in arrays.
 * Handing typed arrays to the store thread moves them without copying, and filling them as
 * rows are produced leaves no row objects to outlive a flush: the pipeline's thread pays for
 * little more than the writes into the arrays.
 */
export interface Columns {
  count: number;
  /** By column index: the numbers of a numeric column, else null. */
  numbers: (Float64Array | null)[];
  /** By column index: the text of a text, list or JSON column (lists and JSON encoded), else null. */
  texts: ((string | null)[] | null)[];
}

export function isNumeric(column: Column): boolean {
  return (
    column.kind === "integer" ||
    column.kind === "bigint" ||
    column.kind === "double" ||
    column.kind === "time"
  );
}

/** The largest magnitude each numeric kind stores (BIGINT and timestamps: a little under 2^63). */
const LIMITS: Partial<Record<Column["kind"], number>> = {
  integer: 2_147_483_647,
  bigint: 9.2e18,
  time: 9.2e18,
};

type Encode = (
  numbers: Float64Array[],
  texts: (string | null)[][],
  row: object,
  at: number,
) => void;
type Decode = (numbers: Float64Array[], texts: (string | null)[][], at: number) => object;

/**
 * A row encoder and decoder specialised to a column list. Column names are the snake_case
 * identifiers of the row types, so they are safe to write into code; the compiled functions
 * read and write fields by name, which generic loops over names cannot do as fast.
 */
function compile(spec: readonly Column[]): { encode: Encode; decode: Decode } {
  const encode: string[] = [];
  const decode: string[] = [];
  spec.forEach((column, index) => {
    const name = column.name;
    if (!/^[a-z_][a-z0-9_]*$/.test(name))
      throw new Error(`column name ${name} is not an identifier`);
    if (isNumeric(column)) {
      // Clamped to what the column's SQL type holds: one value out of range would otherwise
      // make the store refuse the whole batch.
      const limit = LIMITS[column.kind] ?? Number.MAX_VALUE;
      encode.push(
        `n[${index}][at] = typeof row.${name} === "number" ? Math.min(Math.max(row.${name}, ${-limit}), ${limit}) : NaN;`,
      );
      decode.push(`${name}: Number.isNaN(n[${index}][at]) ? null : n[${index}][at],`);
    } else if (column.kind === "list" || column.kind === "json") {
      encode.push(`t[${index}][at] = row.${name} == null ? null : JSON.stringify(row.${name});`);
      decode.push(`${name}: t[${index}][at] === null ? null : JSON.parse(t[${index}][at]),`);
    } else {
      encode.push(`t[${index}][at] = row.${name} ?? null;`);
      decode.push(`${name}: t[${index}][at],`);
    }
  });
  return {
    encode: new Function("n", "t", "row", "at", encode.join("\n")) as Encode,
    decode: new Function("n", "t", "at", `return {\n${decode.join("\n")}\n};`) as Decode,
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

/** Rows appended one at a time into growing columns, taken all at once. */
export class ColumnBuffer {
  private numbers: Float64Array[] = [];
  private texts: (string | null)[][] = [];
  private capacity = 0;
  private rows = 0;
  private readonly encode: Encode;

  constructor(
    readonly spec: readonly Column[],
    private readonly initialCapacity = 256,
  ) {
    this.encode = codecOf(spec).encode;
    this.reset();
  }

  get count(): number {
    return this.rows;
  }

  append(row: object): void {
    if (this.rows === this.capacity) this.grow();
    this.encode(this.numbers, this.texts, row, this.rows);
    this.rows += 1;
  }

  /**
   * The rows so far, as columns; the buffer starts empty again, with room for as many rows,
   * since the next interval is likely to bring as many. The arrays are handed over, not copied.
   */
  take(): Columns {
    const count = this.rows;
    const columns: Columns = {
      count,
      numbers: this.spec.map((c, i) =>
        isNumeric(c) ? (this.numbers[i] as Float64Array).subarray(0, count) : null,
      ),
      texts: this.spec.map((c, i) => {
        if (isNumeric(c)) return null;
        const texts = this.texts[i] as (string | null)[];
        texts.length = count;
        return texts;
      }),
    };
    this.reset(Math.max(this.initialCapacity, count));
    return columns;
  }

  private reset(capacity = this.initialCapacity): void {
    this.capacity = capacity;
    this.rows = 0;
    this.numbers = this.spec.map((c) =>
      isNumeric(c) ? new Float64Array(capacity) : new Float64Array(0),
    );
    this.texts = this.spec.map(() => []);
  }

  private grow(): void {
    this.capacity *= 2;
    this.numbers = this.numbers.map((column, i) => {
      if (!isNumeric(this.spec[i] as Column)) return column;
      const larger = new Float64Array(this.capacity);
      larger.set(column);
      return larger;
    });
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
  const numbers = columns.numbers as Float64Array[];
  const texts = columns.texts as (string | null)[][];
  const rows: Row[] = [];
  for (let at = 0; at < columns.count; at++) rows.push(decode(numbers, texts, at) as Row);
  return rows;
}

export function emptyColumns(spec: readonly Column[]): Columns {
  return columnsOf(spec, []);
}

/** The buffers a message can move to another thread instead of copying. */
export function transferables(...batches: Columns[]): ArrayBuffer[] {
  return batches.flatMap((b) =>
    b.numbers.filter((n): n is Float64Array => n !== null).map((n) => n.buffer as ArrayBuffer),
  );
}
