import type { RunRow, StageRow } from "../record/rows.js";
import { readRows, STAGE_COLUMNS, selectList } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";

const STAGE_SELECT = selectList(STAGE_COLUMNS);

/** Stages of a remote run may start slightly before it by another host's clock. */
const CLOCK_SKEW_US = 60_000_000;

/**
 * How long after its run ended a stage may still start and be shown with it: a span started by
 * work the run left running, or a remote host's clock. An hour of stages is a few row groups at
 * most, against the whole table from the run's start onwards without a bound.
 */
const STRAGGLER_US = 3_600_000_000;

/**
 * The stages of a run in the order they started (by `seq`, then start). Stages start no earlier
 * than their run, and no later than it ended (give or take {@link STRAGGLER_US}); stage rows are
 * appended as stages end, so these bounds let DuckDB skip the row groups of other times.
 */
export async function runStages(session: StoreSession, run: RunRow): Promise<StageRow[]> {
  const params = [run.run_id, run.started_at - CLOCK_SKEW_US];
  let bound = "";
  if (run.finished_at !== null) {
    params.push(Math.max(run.finished_at, run.started_at) + STRAGGLER_US);
    bound = " AND started_at <= make_timestamptz($3::BIGINT)";
  }
  const stages = await readRows<StageRow>(
    session,
    STAGE_COLUMNS,
    `SELECT ${STAGE_SELECT} FROM stages
     WHERE run_id = $1::UUID AND started_at >= make_timestamptz($2::BIGINT)${bound}`,
    params,
  );
  // Sorted here: DuckDB's sort of a run's few rows cost 0.4 ms of CPU, of 2.2 ms for the query.
  return stages.sort(inRunOrder);
}

/** By `seq`, then by start. */
function inRunOrder(a: StageRow, b: StageRow): number {
  return a.seq - b.seq || a.started_at - b.started_at;
}
