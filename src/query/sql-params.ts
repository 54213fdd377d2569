import type { DuckDBValue } from "@duckdb/node-api";

/**
 * Collects positional parameters, so that no value is put into SQL text: the session binds
 * them to the statement (see `StoreSession.all`).
 */
export class SqlParams {
  readonly values: DuckDBValue[] = [];

  /** Adds a value and returns its placeholder. */
  add(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
