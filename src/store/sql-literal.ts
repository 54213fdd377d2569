import type { DuckDBValue } from "@duckdb/node-api";

/** A SQL string literal, for the few places DuckDB takes no parameter (file names in COPY, ATTACH). */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * The SQL text of a statement with its positional parameters (`$1`, `$2`, ...) written in as
 * typed literals, or undefined when one of them cannot be (the statement is then prepared and
 * bound instead).
 *
 * Each literal is cast to the type DuckDB's Node API would bind the value as (a JS number is an
 * INTEGER, a BIGINT or a DOUBLE; a string a VARCHAR), so the statement means what it meant with
 * the value bound. A string is quoted the SQL way, its quotes doubled: DuckDB reads nothing else
 * in a quoted string as an escape. Strings with a NUL or a lone surrogate, numbers that are not
 * safe integers nor fractions, and every other value are left to binding.
 *
 * Why: a bound statement costs DuckDB's Node API three trips to its worker threads (extract,
 * prepare, execute) and a synchronous destroy on the event loop, which waits for the
 * connection; the same statement as text is one trip. For a lookup of one row that is most of
 * its cost (see docs/store.md). A prepared statement kept for reuse is not an answer: DuckDB
 * answers some aggregates of a kept statement from the table statistics of when it was
 * prepared.
 */
export function inlineParams(sql: string, params: readonly DuckDBValue[]): string | undefined {
  const literals: string[] = [];
  for (const value of params) {
    const literal = sqlLiteral(value);
    if (literal === undefined) return undefined;
    literals.push(literal);
  }
  const used = new Set<number>();
  let missing = false;
  const text = sql.replace(TOKENS, (token, index: string | undefined) => {
    if (index === undefined) return token;
    const n = Number(index);
    const literal = literals[n - 1];
    if (literal === undefined) {
      missing = true;
      return token;
    }
    used.add(n);
    return literal;
  });
  // A placeholder without a value, or a value without a placeholder, is an error binding
  // reports in its own words.
  if (missing || used.size !== literals.length) return undefined;
  return text;
}

/**
 * Quoted strings, quoted names and comments (taken whole, so that nothing in them is a
 * placeholder), and placeholders.
 */
const TOKENS = /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|\$(\d+)/g;

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const HUGEINT_MAX = 2n ** 127n - 1n;

/** One value as a typed SQL literal (see {@link inlineParams}), or undefined. */
export function sqlLiteral(value: DuckDBValue): string | undefined {
  switch (typeof value) {
    case "string":
      if (value.includes("\0") || !value.isWellFormed()) return undefined;
      return `CAST(${sqlString(value)} AS VARCHAR)`;
    case "number":
      if (Number.isInteger(value)) {
        if (value >= INT32_MIN && value <= INT32_MAX) return `CAST(${value} AS INTEGER)`;
        return Number.isSafeInteger(value) ? `CAST(${value} AS BIGINT)` : undefined;
      }
      // Fractions, NaN and the infinities: DuckDB reads JS's shortest round-trip form exactly.
      return `CAST('${String(value)}' AS DOUBLE)`;
    case "bigint":
      if (value > HUGEINT_MAX || value < -HUGEINT_MAX - 1n) return undefined;
      return `CAST('${value}' AS HUGEINT)`;
    case "boolean":
      return value ? "TRUE" : "FALSE";
    default:
      return value === null ? "NULL" : undefined;
  }
}
