import type { RunRow, StageRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import { RUN_COLUMNS, readRows, STAGE_COLUMNS, selectList } from "../../src/store/row-columns.js";
import type { StoreSession } from "../../src/store/store-session.js";

/** Every run in a store, oldest first, read the way the CLI reads them. */
export async function storedRuns(path: string): Promise<RunRow[]> {
  return withStore(path, (session) =>
    readRows<RunRow>(
      session,
      RUN_COLUMNS,
      `SELECT ${selectList(RUN_COLUMNS)} FROM runs ORDER BY started_at, run_id`,
    ),
  );
}

/** Every stage in a store, by run and sequence. */
export async function storedStages(path: string): Promise<StageRow[]> {
  return withStore(path, (session) =>
    readRows<StageRow>(
      session,
      STAGE_COLUMNS,
      `SELECT ${selectList(STAGE_COLUMNS)} FROM stages ORDER BY run_id, seq`,
    ),
  );
}

/** Rows per row group of a table, in storage order, as DuckDB keeps them in the file. */
export async function rowGroupSizes(session: StoreSession, table: string): Promise<number[]> {
  const rows = await session.all<{ rows: number }>(
    `SELECT max(start + count)::DOUBLE - min(start)::DOUBLE AS rows
     FROM pragma_storage_info('${table}') WHERE column_id = 0
     GROUP BY row_group_id ORDER BY row_group_id`,
  );
  return rows.map((r) => r.rows);
}
