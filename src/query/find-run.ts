import type { RunRow } from "../record/rows.js";
import { normalizeIdPrefix, uuidRange } from "../record/run-id.js";
import { fromStoredRow, RUN_COLUMNS } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";
import { rowsOf } from "./list-runs.js";

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
  const keys = await matchingKeys(session, uuidRange(hex), undefined, tenant, limit);
  // Every run of a trace has a run id that starts with the trace id's first 16 digits, so the
  // trace-id match only needs to look at the runs in that run-id range. For a prefix of at most
  // 16 digits that range is the prefix's own, and every run in it matched already.
  if (hex.length > 16 && keys.length < limit) {
    for (const key of await matchingKeys(
      session,
      uuidRange(hex.slice(0, 16)),
      hex,
      tenant,
      limit + keys.length,
    )) {
      if (keys.length < limit && !keys.some((k) => k.run_id === key.run_id)) keys.push(key);
    }
  }
  return (await rowsOf(session, keys)).map((r) => fromStoredRow<RunRow>(RUN_COLUMNS, r));
}

interface RunKey {
  run_id: string;
  started_at: number;
}

/**
 * Ids of the runs in a run-id range (of a trace-id prefix, if given), newest first. Only the
 * ids are read at first: run ids are random, so no zone map narrows the scan, and reading few
 * columns of the whole table is what a lookup costs.
 */
async function matchingKeys(
  session: StoreSession,
  [low, high]: [string, string],
  tracePrefix: string | undefined,
  tenant: string | undefined,
  limit: number,
): Promise<RunKey[]> {
  const params: (string | number)[] = [low, high];
  let where = "run_id BETWEEN $1::UUID AND $2::UUID";
  if (tracePrefix !== undefined) {
    params.push(tracePrefix);
    where += ` AND starts_with(trace_id, $${params.length})`;
  }
  if (tenant !== undefined) {
    params.push(tenant);
    where += ` AND tenant_id = $${params.length}`;
  }
  params.push(limit);
  return session.all<RunKey>(
    `SELECT run_id::VARCHAR AS run_id, epoch_us(started_at)::DOUBLE AS started_at FROM runs
     WHERE ${where} ORDER BY runs.started_at DESC, runs.run_id DESC LIMIT $${params.length}`,
    params,
  );
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
