import {
  PAST_TRACE_DIGITS,
  SHORT_ID_DIGITS,
  TRACE_HEAD_DIGITS,
  uuidPrefix,
} from "../record/run-id.js";
import type { StoreSession } from "../store/store-session.js";
import { SqlParams } from "./sql-params.js";

/** What a lookup by prefix matches a run on (see `findRuns`). */
export interface RunIds {
  run_id: string;
  trace_id: string | null;
}

const hexOf = (id: string) => id.replaceAll("-", "").toLowerCase();

/** Does a lookup of `prefix` (hex digits, no dashes) match the run, as `findRuns` matches? */
function matches(prefix: string, run: RunIds): boolean {
  const id = hexOf(run.run_id);
  if (id.startsWith(prefix)) return true;
  // A prefix longer than the trace head also names the runs of a trace whose id it begins.
  return (
    prefix.length > TRACE_HEAD_DIGITS &&
    id.startsWith(prefix.slice(0, TRACE_HEAD_DIGITS)) &&
    (run.trace_id ?? "").toLowerCase().startsWith(prefix)
  );
}

/**
 * The id to show for each run: the shortest prefix of its run id, of at least 8 hex digits, that
 * `runtrail show` (`lookupRun`) resolves to that run alone among `known` runs; the whole id when
 * only that does (a run that is the root of a trace with runs nested in it: every prefix of
 * its id is a prefix of its trace id, which names them all). A prefix past the 16 digits a
 * trace's runs share is at least 20 digits long. `known` should hold the runs listed and the
 * runs that look like them (see {@link lookalikeRuns}); the runs themselves count as known.
 */
export function distinctIdPrefixes(
  runs: readonly RunIds[],
  known: readonly RunIds[],
): Map<string, string> {
  // Only runs sharing the first 8 digits can match a prefix of 8 digits or more.
  const byHead = new Map<string, Map<string, RunIds>>();
  for (const run of [...known, ...runs]) {
    const head = hexOf(run.run_id).slice(0, SHORT_ID_DIGITS);
    const same = byHead.get(head) ?? new Map<string, RunIds>();
    // Of two copies of a run, the one that knows its trace id is kept.
    const id = hexOf(run.run_id);
    if (run.trace_id !== null || same.get(id)?.trace_id == null) same.set(id, run);
    byHead.set(head, same);
  }
  const shown = new Map<string, string>();
  for (const run of runs) {
    const id = hexOf(run.run_id);
    const others = [...(byHead.get(id.slice(0, SHORT_ID_DIGITS))?.values() ?? [])].filter(
      (other) => hexOf(other.run_id) !== id,
    );
    let digits = SHORT_ID_DIGITS;
    while (digits < id.length && others.some((other) => matches(id.slice(0, digits), other))) {
      digits += 1;
    }
    if (digits > TRACE_HEAD_DIGITS) digits = Math.max(digits, PAST_TRACE_DIGITS);
    shown.set(run.run_id, uuidPrefix(run.run_id, Math.min(digits, id.length)));
  }
  return shown;
}

/**
 * The runs that could make a prefix of one of these run ids name another run too: those of
 * their traces (whose ids share their first 16 hex digits) and those whose ids share their
 * first 8. A run's id begins with its trace id's first 16 digits, so the first are found by
 * trace id and the others by the start of the run id, in one scan of each column (about 40 ms
 * for a million runs), whatever the number of ids.
 */
export async function lookalikeRuns(
  session: StoreSession,
  runIds: readonly string[],
): Promise<RunIds[]> {
  const heads = [...new Set(runIds.map((id) => hexOf(id).slice(0, TRACE_HEAD_DIGITS)))];
  if (heads.length === 0) return [];
  const params = new SqlParams();
  const traces = heads.map((head) => params.add(head)).join(", ");
  const shorts = [...new Set(runIds.map((id) => id.toLowerCase().slice(0, SHORT_ID_DIGITS)))]
    .map((short) => params.add(short))
    .join(", ");
  return session.all<RunIds>(
    `SELECT run_id::VARCHAR AS run_id, trace_id FROM runs
     WHERE left(trace_id, ${TRACE_HEAD_DIGITS}) IN (SELECT unnest([${traces}]))
        OR left(run_id::VARCHAR, ${SHORT_ID_DIGITS}) IN (SELECT unnest([${shorts}]))`,
    params.values,
  );
}
