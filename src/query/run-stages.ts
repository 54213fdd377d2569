import type { RunRow, StageRow } from "../record/rows.js";
import { fromStoredRow, STAGE_COLUMNS, selectList } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";

/** Stages of a remote run may start slightly before it by another host's clock. */
const CLOCK_SKEW_US = 60_000_000;

/**
 * The stages of a run in the order they started. Stages start no earlier than their run, and
 * stage rows are appended as stages end, so the start-time bound lets DuckDB skip older rows.
 */
export async function runStages(session: StoreSession, run: RunRow): Promise<StageRow[]> {
  const raw = await session.all<Record<string, unknown>>(
    `SELECT ${selectList(STAGE_COLUMNS)} FROM stages
     WHERE run_id = $1::UUID AND started_at >= make_timestamptz($2::BIGINT)
     ORDER BY stages.seq, stages.started_at`,
    [run.run_id, run.started_at - CLOCK_SKEW_US],
  );
  return raw.map((r) => fromStoredRow<StageRow>(STAGE_COLUMNS, r));
}
