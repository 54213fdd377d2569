import type { RunRow } from "../record/rows.js";
import { fromStoredRow, RUN_COLUMNS, selectList } from "../store/row-columns.js";
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

const RUN_SELECT = selectList(RUN_COLUMNS);

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
  const limit = params.add(options.limit + 1);
  const raw = await session.all<Record<string, unknown>>(
    // Ordered by the columns, not the converted select-list values of the same names: DuckDB
    // then picks the top rows first and converts only those.
    `SELECT ${RUN_SELECT} FROM runs WHERE ${page} ORDER BY runs.started_at DESC, runs.run_id DESC LIMIT ${limit}`,
    params.values,
  );
  const counted = await session.one<{ total: number }>(
    `SELECT count(*)::DOUBLE AS total FROM runs WHERE ${where}`,
    countParams,
  );
  const runs = raw.slice(0, options.limit).map((r) => fromStoredRow<RunRow>(RUN_COLUMNS, r));
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
