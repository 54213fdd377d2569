import type { DuckDBValue } from "@duckdb/node-api";
import type { RunRow } from "../record/rows.js";
import { RUN_COLUMNS, readRows, selectList } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";
import { type RunFilter, runFilterSql } from "./run-filter.js";
import { SqlParams } from "./sql-params.js";

/** Where the previous page ended: runs are ordered by start time, then run id, newest first. */
export interface RunCursor {
  startedAt: number;
  runId: string;
}

export interface ListRunsOptions extends RunFilter {
  limit: number;
  cursor?: RunCursor;
}

export interface RunPage {
  runs: RunRow[];
  /** Runs matching the filter, over all pages. */
  total: number;
  /** Where the next page starts, or null on the last page. */
  next: RunCursor | null;
}

/** The select list that reads whole run rows. */
export const RUN_SELECT = selectList(RUN_COLUMNS);

const HOUR_US = 3_600_000_000;
/** How far back from the newest start the windows tried for a page reach; null: all. */
const WINDOWS_US = [HOUR_US, 24 * HOUR_US, 30 * 24 * HOUR_US, null];

/** Runs matching a filter, newest first, a page at a time. */
export async function listRuns(session: StoreSession, options: ListRunsOptions): Promise<RunPage> {
  const params = new SqlParams();
  const where = runFilterSql(options, params);
  const countParams = [...params.values];
  let page = where;
  if (options.cursor) {
    const at = params.add(options.cursor.startedAt);
    const id = params.add(options.cursor.runId);
    page += ` AND (started_at < make_timestamptz(${at}::BIGINT) OR (started_at = make_timestamptz(${at}::BIGINT) AND run_id < ${id}::UUID))`;
  }
  const pageValues = [...params.values];
  const limit = params.add(options.limit + 1);
  // The page's keys first, from two columns; then its rows. Sorting whole rows to keep the
  // top ones reads every column of every row the filter leaves.
  //
  // DuckDB's top-N sorts every row the filter leaves, while a filter on started_at skips whole
  // row groups (runs are stored in start order) and costs little. The newest page lies in a
  // window back from the newest start whenever that window holds a page of matching runs:
  // every run outside it is older than every run in it. So windows are tried from an hour
  // back, wider each time, the last without a bound. A filter that keeps few runs (a status,
  // a pipeline) would take several tries: it goes straight to the last.
  const selective =
    (options.statuses?.length ?? 0) > 0 ||
    options.pipeline !== undefined ||
    options.tenant !== undefined ||
    options.minDurationSeconds !== undefined ||
    options.hasError !== undefined;
  const windows = selective ? [null] : WINDOWS_US;
  const newest = selective ? 0 : (options.cursor?.startedAt ?? (await newestStart(session)));
  let keys: { run_id: string; started_at: number }[] = [];
  for (const window of windows) {
    const values = window === null ? params.values : [...params.values, newest - window];
    const bound =
      window === null ? "" : ` AND started_at >= make_timestamptz($${values.length}::BIGINT)`;
    keys = await session.all<{ run_id: string; started_at: number }>(
      `SELECT run_id::VARCHAR AS run_id, epoch_us(started_at)::DOUBLE AS started_at FROM runs
       WHERE ${page}${bound} ORDER BY runs.started_at DESC, runs.run_id DESC LIMIT ${limit}`,
      values,
    );
    if (keys.length > options.limit) break;
  }
  const raw = await pageRows(session, page, pageValues, keys);
  const counted = await session.one<{ total: number }>(
    `SELECT count(*)::DOUBLE AS total FROM runs WHERE ${where}`,
    countParams,
  );
  const runs = raw.slice(0, options.limit);
  const last = runs[runs.length - 1];
  return {
    runs,
    total: counted?.total ?? 0,
    next:
      raw.length > options.limit && last
        ? { startedAt: last.started_at, runId: last.run_id }
        : null,
  };
}

/**
 * The rows of a page whose keys were found by `SELECT ... WHERE where ORDER BY ...`, in the order
 * of the keys: read by the same filter, bounded to the keys' start times, so that DuckDB reads
 * only the row groups that hold them; at the oldest of those times, where runs beyond the page
 * may start too, only the keys' own ids. Naming every key (`run_id IN (...)`, see
 * {@link rowsOf}) cost DuckDB more than the rows: for the rows of 100 failed runs in a million,
 * 5.7 ms of CPU against 3.0; sorting them in SQL, 4.4 ms for 11 runs. A row written or changed in
 * between may take a key's place or leave the filter: keys not found are read by id, so the
 * page holds exactly its keys, as they are now.
 */
export async function pageRows(
  session: StoreSession,
  where: string,
  values: readonly DuckDBValue[],
  keys: readonly { run_id: string; started_at: number }[],
): Promise<RunRow[]> {
  if (keys.length === 0) return [];
  const times = keys.map((k) => k.started_at);
  const low = Math.min(...times);
  const params = new SqlParams();
  for (const value of values) params.add(value);
  const from = params.add(low);
  const to = params.add(Math.max(...times));
  const atLow = keys
    .filter((k) => k.started_at === low)
    .map((k) => `${params.add(k.run_id)}::UUID`)
    .join(", ");
  const found = await readRows<RunRow>(
    session,
    RUN_COLUMNS,
    `SELECT ${RUN_SELECT} FROM runs
     WHERE ${where}
       AND started_at BETWEEN make_timestamptz(${from}::BIGINT) AND make_timestamptz(${to}::BIGINT)
       AND (started_at > make_timestamptz(${from}::BIGINT) OR run_id IN (${atLow}))`,
    params.values,
  );
  const have = new Set(found.map((row) => row.run_id));
  const missing = await rowsOf(
    session,
    keys.filter((k) => !have.has(k.run_id)),
  );
  return inKeyOrder(keys, [...found, ...missing]);
}

/** Rows in the order of their keys; a key without a row is left out. */
function inKeyOrder(keys: readonly { run_id: string }[], rows: readonly RunRow[]): RunRow[] {
  const byId = new Map(rows.map((row) => [row.run_id, row]));
  return keys.flatMap((k) => byId.get(k.run_id) ?? []);
}

/**
 * The rows of runs found by key, in the order of the keys. Bounded by their start times, so
 * that DuckDB reads only the row groups that hold them.
 */
export async function rowsOf(
  session: StoreSession,
  keys: readonly { run_id: string; started_at: number }[],
): Promise<RunRow[]> {
  if (keys.length === 0) return [];
  const ids = keys.map((k) => k.run_id);
  const times = keys.map((k) => k.started_at);
  const rows = await readRows<RunRow>(
    session,
    RUN_COLUMNS,
    `SELECT ${RUN_SELECT} FROM runs
     WHERE started_at BETWEEN make_timestamptz($1::BIGINT) AND make_timestamptz($2::BIGINT)
       AND run_id IN (${ids.map((_, i) => `$${i + 3}::UUID`).join(", ")})`,
    [Math.min(...times), Math.max(...times), ...ids],
  );
  return inKeyOrder(keys, rows);
}

/** The start of the newest run, epoch microseconds (0 for no runs): from DuckDB's statistics. */
async function newestStart(session: StoreSession): Promise<number> {
  const row = await session.one<{ newest: number | null }>(
    "SELECT epoch_us(max(started_at))::DOUBLE AS newest FROM runs",
  );
  return row?.newest ?? 0;
}
