import type { RunRow } from "../record/rows.js";
import { normalizeIdPrefix, uuidRange } from "../record/run-id.js";
import { RUN_COLUMNS, readRows } from "../store/row-columns.js";
import type { StoreSession } from "../store/store-session.js";
import { RUN_SELECT, rowsOf } from "./list-runs.js";
import type { RunKeyIndex } from "./run-key-index.js";

/**
 * The runs a prefix of a run id or a trace id matches (at most `limit`): those whose run id
 * matches first, then those of the trace; newest first within each.
 */
export async function findRuns(
  session: StoreSession,
  prefix: string,
  limit = 10,
  tenant?: string,
  index?: RunKeyIndex,
): Promise<RunRow[]> {
  const hex = normalizeIdPrefix(prefix);
  // With an index, only the rows of the start times it gives for the prefix are looked at
  // (every run whose id shares the first 8 digits, trace-id matches included): none, no match.
  const starts = index?.startsOf(hex);
  if (starts !== undefined && starts.length === 0) return [];
  const found = (range: [string, string], tracePrefix: string | undefined, n: number) =>
    matchingKeys(session, range, tracePrefix, tenant, n, starts);
  const keys = await found(uuidRange(hex), undefined, limit);
  // Every run of a trace has a run id that starts with the trace id's first 16 digits, so the
  // trace-id match only needs to look at the runs in that run-id range. For a prefix of at most
  // 16 digits that range is the prefix's own, and every run in it matched already.
  if (hex.length > 16 && keys.length < limit) {
    for (const key of await found(uuidRange(hex.slice(0, 16)), hex, limit + keys.length)) {
      if (keys.length < limit && !keys.some((k) => k.run_id === key.run_id)) keys.push(key);
    }
  }
  // For few start times the keys were read as whole rows (see matchingKeys).
  return namesFew(starts) ? (keys as RunRow[]) : rowsOf(session, keys);
}

/** Start times a lookup names one by one, at most. */
const EXACT_STARTS_MAX = 64;

/**
 * An index gave few enough start times to name them one by one; the rows of those cost little
 * more to read whole than their keys, so the lookup reads them whole, in one query. Many (the
 * runs nested in one trace share their first digits) only bound the key query's time range.
 */
function namesFew(starts: readonly number[] | undefined): starts is readonly number[] {
  return starts !== undefined && starts.length <= EXACT_STARTS_MAX;
}

interface RunKey {
  run_id: string;
  started_at: number;
}

/** Newest first, then by run id from the highest, as DuckDB orders them. */
function newestFirst(a: RunKey, b: RunKey): number {
  if (a.started_at !== b.started_at) return b.started_at - a.started_at;
  return a.run_id < b.run_id ? 1 : a.run_id > b.run_id ? -1 : 0;
}

/**
 * Ids of the runs in a run-id range (of a trace-id prefix, if given), newest first; or, for
 * few `starts` (see {@link namesFew}), their whole rows. Without `starts` only the ids are
 * read at first: run ids are random, so no zone map narrows the scan, and reading few columns
 * of the whole table is what a lookup costs. With `starts` (from a {@link RunKeyIndex}) only
 * the runs of those start times are looked at.
 */
async function matchingKeys(
  session: StoreSession,
  [low, high]: [string, string],
  tracePrefix: string | undefined,
  tenant: string | undefined,
  limit: number,
  starts: readonly number[] | undefined,
): Promise<RunKey[]> {
  const params: (string | number)[] = [low, high];
  let where = "run_id BETWEEN $1::UUID AND $2::UUID";
  if (starts !== undefined) {
    // A range DuckDB's zone maps prune by (one time, for the one run a prefix usually names),
    // then the exact times.
    const first = params.length + 1;
    params.push(Math.min(...starts), Math.max(...starts));
    where += ` AND started_at BETWEEN make_timestamptz($${first}::BIGINT) AND make_timestamptz($${first + 1}::BIGINT)`;
    if (namesFew(starts) && starts.length > 1) {
      params.push(...starts);
      where += ` AND epoch_us(started_at) IN (${starts.map((_, i) => `$${first + 2 + i}::BIGINT`).join(", ")})`;
    }
  }
  if (tracePrefix !== undefined) {
    params.push(tracePrefix);
    where += ` AND starts_with(trace_id, $${params.length})`;
  }
  if (tenant !== undefined) {
    params.push(tenant);
    where += ` AND tenant_id = $${params.length}`;
  }
  if (namesFew(starts)) {
    // The rows of at most EXACT_STARTS_MAX start times: sorted here, for DuckDB's top-N costs
    // more on whole rows (7 ms) than the rows themselves (2.3 ms).
    const rows = await readRows<RunRow>(
      session,
      RUN_COLUMNS,
      `SELECT ${RUN_SELECT} FROM runs WHERE ${where}`,
      params,
    );
    return rows.sort(newestFirst).slice(0, limit);
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
  index?: RunKeyIndex,
): Promise<RunLookup> {
  const matches = await findRuns(session, prefix, 10, tenant, index);
  const hex = normalizeIdPrefix(prefix);
  // A whole run id names its run even when it is also the prefix of a nested run's trace.
  const exact = matches.find((r) => r.run_id.replaceAll("-", "") === hex);
  if (exact) return { found: "one", run: exact };
  const [only] = matches;
  if (only === undefined) return { found: "none" };
  if (matches.length === 1) return { found: "one", run: only };
  return { found: "many", candidates: matches };
}
