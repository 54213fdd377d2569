/**
 * A SQL string literal, for the few places DuckDB takes no parameter: the file names of COPY
 * and ATTACH. Every value a query filters by is bound as a parameter instead.
 */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
