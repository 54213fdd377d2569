import type { RunRow, StageRow } from "../../src/record/rows.js";
import { withStore } from "../../src/store/open-store.js";
import {
  fromStoredRow,
  RUN_COLUMNS,
  STAGE_COLUMNS,
  selectList,
} from "../../src/store/row-columns.js";

/** Every run in a store, oldest first, read the way the CLI reads them. */
export async function storedRuns(path: string): Promise<RunRow[]> {
  return withStore(path, async (session) => {
    const raw = await session.all<Record<string, unknown>>(
      `SELECT ${selectList(RUN_COLUMNS)} FROM runs ORDER BY started_at, run_id`,
    );
    return raw.map((r) => fromStoredRow<RunRow>(RUN_COLUMNS, r));
  });
}

/** Every stage in a store, by run and sequence. */
export async function storedStages(path: string): Promise<StageRow[]> {
  return withStore(path, async (session) => {
    const raw = await session.all<Record<string, unknown>>(
      `SELECT ${selectList(STAGE_COLUMNS)} FROM stages ORDER BY run_id, seq`,
    );
    return raw.map((r) => fromStoredRow<StageRow>(STAGE_COLUMNS, r));
  });
}
