import type { DuckDBValue } from "@duckdb/node-api";

/** Collects positional parameters so that no value ever becomes SQL text. */
export class SqlParams {
  readonly values: DuckDBValue[] = [];

  /** Adds a value and returns its placeholder. */
  add(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
