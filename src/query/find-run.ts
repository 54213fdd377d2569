import type { RunRow } from "../record/rows.js";
import { normalizeIdPrefix, uuidRange } from "../record/run-id.js";
import { fromStoredRow, RUN_COLUMNS, selectList } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";

/**
 * The runs a prefix of a run id or a trace id matches (at most `limit`): those whose run id
 * matches first, then those of the trace; newest first within each.
 */
export async function findRuns(
  session: StoreSession,
  prefix: string,
  limit = 10,
  tenant?: string,
): Promise<RunRow[]> {
  const hex = normalizeIdPrefix(prefix);
  const [low, high] = uuidRange(hex);
  // Every run of a trace has a run id that starts with the trace id's first 16 digits, so the
  // trace-id match only needs to look at the runs in that run-id range.
  const [traceLow, traceHigh] = uuidRange(hex.slice(0, 16));
  const raw = await session.all<Record<string, unknown>>(
    `SELECT ${selectList(RUN_COLUMNS)} FROM runs
     WHERE (run_id BETWEEN $1::UUID AND $2::UUID
        OR (run_id BETWEEN $3::UUID AND $4::UUID AND starts_with(trace_id, $5)))
       ${tenant === undefined ? "" : "AND tenant_id = $7"}
     ORDER BY (runs.run_id BETWEEN $1::UUID AND $2::UUID) DESC, runs.started_at DESC, runs.run_id DESC
     LIMIT $6`,
    [low, high, traceLow, traceHigh, hex, limit, ...(tenant === undefined ? [] : [tenant])],
  );
  return raw.map((r) => fromStoredRow<RunRow>(RUN_COLUMNS, r));
}

export type RunLookup =
  | { found: "one"; run: RunRow }
  | { found: "none" }
  | { found: "many"; candidates: RunRow[] };

/** The one run a prefix names (among a tenant's runs, if given), or why there is not exactly one. */
export async function lookupRun(
  session: StoreSession,
  prefix: string,
  tenant?: string,
): Promise<RunLookup> {
  const matches = await findRuns(session, prefix, 10, tenant);
  const hex = normalizeIdPrefix(prefix);
  // A whole run id names its run even when it is also the prefix of a nested run's trace.
  const exact = matches.find((r) => r.run_id.replaceAll("-", "") === hex);
  if (exact) return { found: "one", run: exact };
  const [only] = matches;
  if (only === undefined) return { found: "none" };
  if (matches.length === 1) return { found: "one", run: only };
  return { found: "many", candidates: matches };
}
