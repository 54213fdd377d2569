import {
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBInstance,
  type DuckDBMaterializedResult,
  type DuckDBPreparedStatement,
  type DuckDBValue,
  JSDuckDBValueConverter,
  StatementType,
} from "@duckdb/node-api";
import { type Staging, StagingState } from "./stage-columns.js";

export type SqlParams = DuckDBValue[] | Record<string, DuckDBValue>;

/**
 * Prepared statements a connection keeps for reuse, at most: the reads of a server or a CLI
 * command are a few dozen texts (the IN lists of a lookup vary with their length), asked
 * again and again with other values.
 */
const KEPT_STATEMENTS = 64;

/**
 * The kinds of statement kept: reads, changes of rows, and `SET VARIABLE` (a write's values).
 * DuckDB runs a kept `CREATE … AS` wrongly the second time (the table it makes lacks the
 * columns named in its select list).
 */
const KEPT_TYPES: ReadonlySet<StatementType> = new Set([
  StatementType.SELECT,
  StatementType.INSERT,
  StatementType.UPDATE,
  StatementType.DELETE,
  StatementType.MERGE_INTO,
  StatementType.SET,
]);

interface KeptStatement {
  statement: DuckDBPreparedStatement;
  /** Bound and running: its values are not to be replaced until it is done. */
  busy: boolean;
  /** No longer kept: destroyed once it is done. */
  dropped: boolean;
}

/** The name the store file is attached under, in every session; its tables are the default. */
export const STORE_ALIAS = "store";

function forEachChunk(
  result: DuckDBMaterializedResult,
  visit: (chunk: DuckDBDataChunk) => void,
): void {
  const count = result.chunkCount;
  for (let i = 0; i < count; i++) visit(result.getChunk(i));
}

/**
 * What a server learns of the runs its writes change, before each write: where each run is
 * (see `RunKeyIndex`), and which answers it has kept are no longer true (see `ReadCache`).
 * `writeColumns` and `reapCrashedRuns` tell it of every run they change.
 */
export interface RowWatcher {
  /** A run row about to be written: its id and its start (epoch microseconds). */
  runRow(runId: string, startedAt: number): void;
  /** A run whose stages are about to be written, or that is about to be changed in place or deleted. */
  runChanged(runId: string): void;
}

/**
 * One open store: a DuckDB instance and its connection, held by this process until `close()`.
 * Sessions are short: the DuckDB file admits one process at a time, so every process opens it,
 * does its work and lets go.
 */
export class StoreSession {
  private closed = false;
  /** Prepared statements of reads, by their text, the least recently used first. */
  private readonly kept = new Map<string, KeptStatement>();
  /** Told of the runs each write of rows is about to change, before it (see {@link RowWatcher}). */
  watcher: RowWatcher | undefined;
  /** How this connection hands a write's columns to DuckDB (see `Staging`). */
  staging: Staging = "tables";
  /** What it has staged for the write under way, and made to stage in (see `stageColumns`). */
  readonly staged = new StagingState();

  constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    private readonly release: () => void,
    /** A second connection to the same open store: closing it closes only the connection. */
    private readonly shared = false,
  ) {}

  /** Makes a new connection's statements mean the store's tables, with times in UTC. */
  static async prepareConnection(connection: DuckDBConnection): Promise<void> {
    await connection.run(`USE ${STORE_ALIAS}; SET TimeZone = 'UTC'`);
  }

  /**
   * Another connection to the same open store, for work that runs alongside this session's
   * (a server's readers next to its writer). Close it before this session.
   */
  async connect(): Promise<StoreSession> {
    const connection = await this.instance.connect();
    await StoreSession.prepareConnection(connection);
    return new StoreSession(this.path, this.instance, connection, () => undefined, true);
  }

  /**
   * Runs a statement with its parameters bound, kept as reads are (see `query`). Writes pass
   * whole batches as one value (a JSON text of thousands of rows), which binding hands over as
   * it is and SQL text would parse.
   */
  async run(sql: string, params?: SqlParams): Promise<void> {
    await this.query(sql, params);
  }

  /** Rows as plain objects: numbers, strings, booleans, arrays and nulls. */
  async all<T>(sql: string, params?: SqlParams): Promise<T[]> {
    const result = await this.query(sql, params);
    const names = result.deduplicatedColumnNames();
    const rows: Record<string, unknown>[] = [];
    forEachChunk(result, (chunk) => {
      for (let r = 0; r < chunk.rowCount; r++) {
        const values = chunk.convertRowValues(r, JSDuckDBValueConverter);
        const row: Record<string, unknown> = {};
        for (let c = 0; c < names.length; c++) row[names[c] as string] = values[c];
        rows.push(row);
      }
    });
    return rows as T[];
  }

  /**
   * Rows as arrays of DuckDB's values, in the order of the select list: for readers that know
   * each column's type and convert it themselves (see `readRows`).
   */
  async values(sql: string, params?: SqlParams): Promise<DuckDBValue[][]> {
    const result = await this.query(sql, params);
    const rows: DuckDBValue[][] = [];
    forEachChunk(result, (chunk) => chunk.appendToRows(rows));
    return rows;
  }

  /**
   * Runs a statement with its parameters bound, on a statement prepared the first time its
   * text was asked and kept (reads, changes of rows, SET VARIABLE): one trip to DuckDB's
   * threads, where `connection.run(sql, values)` takes three (extract, prepare, execute) and a
   * synchronous destroy on the event loop. A kept statement that is running when it is asked
   * again is not bound twice: the second read gets a statement of its own. A read without
   * values runs as text, never kept: DuckDB plans such a statement from the table statistics
   * of when it is prepared, and a kept unfiltered count of the runs went on giving the count
   * of then after runs were written; kept reads with values followed every write
   * (test/store/store-session.test.ts checks both on a reopened store).
   * The result is materialized: its chunks are read synchronously afterwards, where a result
   * reader fetches each one (and the end) in a trip of its own to DuckDB's threads: 0.07 to
   * 0.16 ms of CPU more a query.
   */
  private async query(
    sql: string,
    params: SqlParams | undefined,
  ): Promise<DuckDBMaterializedResult> {
    if (params === undefined || (Array.isArray(params) && params.length === 0)) {
      return this.connection.run(sql);
    }
    let kept = this.kept.get(sql);
    if (kept === undefined || kept.busy) {
      const statement = await this.connection.prepare(sql);
      if (this.kept.has(sql) || this.closed || !KEPT_TYPES.has(statement.statementType)) {
        return runOnce(statement, params);
      }
      kept = { statement, busy: false, dropped: false };
      this.keep(sql, kept);
    } else {
      // Used last: kept longest.
      this.kept.delete(sql);
      this.kept.set(sql, kept);
    }
    kept.busy = true;
    try {
      kept.statement.bind(params);
      return await kept.statement.run();
    } finally {
      kept.busy = false;
      if (kept.dropped) kept.statement.destroySync();
    }
  }

  private keep(sql: string, kept: KeptStatement): void {
    this.kept.set(sql, kept);
    if (this.kept.size <= KEPT_STATEMENTS) return;
    const [oldestSql, oldest] = this.kept.entries().next().value as [string, KeptStatement];
    this.kept.delete(oldestSql);
    oldest.dropped = true;
    if (!oldest.busy) oldest.statement.destroySync();
  }

  async one<T>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  /** Runs `work` in a transaction: committed if it returns, rolled back if it throws. */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.connection.run("BEGIN TRANSACTION");
    let result: T;
    try {
      result = await work();
    } catch (error) {
      await this.connection.run("ROLLBACK").catch(() => undefined);
      throw error;
    }
    await this.connection.run("COMMIT");
    return result;
  }

  /**
   * Runs statements without values as one text: one trip to DuckDB's threads for all of them,
   * where on a server's busy event loop each trip waits its turn, several milliseconds. DuckDB
   * stops at the first that fails.
   */
  async script(statements: readonly string[]): Promise<void> {
    if (statements.length > 0) await this.connection.run(statements.join(";\n"));
  }

  /** Closes the connection and the database (checkpointing it) and lets other processes in. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Closing the connection destroys its statements.
    this.kept.clear();
    try {
      this.connection.closeSync();
      if (!this.shared) this.instance.closeSync();
    } finally {
      this.release();
    }
  }
}

/** Runs a statement prepared for one read, and destroys it. */
async function runOnce(
  statement: DuckDBPreparedStatement,
  params: SqlParams,
): Promise<DuckDBMaterializedResult> {
  try {
    statement.bind(params);
    return await statement.run();
  } finally {
    statement.destroySync();
  }
}
