import { isoOfMicros } from "../util/duration.js";
import type { RunStatus, StageStatus } from "./run-status.js";

/**
 * A run as the recorder writes it: one row of the `runs` table. Field names are the column
 * names, so the same object is a row, a spool line and (with times as text) an API record.
 * Times are epoch microseconds.
 */
export interface RunRow {
  run_id: string;
  trace_id: string;
  span_id: string;
  tenant_id: string | null;
  pipeline: string;
  service_name: string | null;
  status: RunStatus;
  /** Why a run was rejected, cancelled, timed out or crashed. */
  status_reason: string | null;
  /** `Type: message` of the error, as seed 000's `error` column. */
  error: string | null;
  error_type: string | null;
  error_message: string | null;
  error_stack: string | null;
  failed_stage: string | null;
  input_fingerprint: string | null;
  code_ref: string | null;
  config_hash: string | null;
  started_at: number;
  finished_at: number | null;
  duration_seconds: number | null;
  deadline_at: number | null;
  rows_in: number | null;
  rows_out: number | null;
  llm_calls: number;
  tokens: number;
  input_tokens: number;
  output_tokens: number;
  stages_expected: number | null;
  stages_completed: number;
  stages_executed: string[];
  stages_failed: string[];
  retry_count: number;
  current_stage: string | null;
  metadata: Record<string, unknown> | null;
  owner_host: string | null;
  owner_pid: number | null;
  owner_started_at: number | null;
  last_heartbeat: number | null;
  /** The failed run this one resumed. */
  resumed_from: string | null;
  /** The run whose output this one reused whole. */
  cached_from: string | null;
  /** URL of the module defining the pipeline, for `runtrail resume`. */
  entry_point: string | null;
  /** Snapshot of the run's input. */
  input_snapshot: string | null;
  /** The run's artifacts in order of creation. */
  artifacts: ArtifactRow[] | null;
}

/** An artifact of a run: a file in `<store dir>/artifacts/<run_id>/`. */
export interface ArtifactRow {
  /** 1, 2, ... in order of creation. */
  seq: number;
  kind: string;
  /** File name in the run's artifact folder, `NN_<kind>.<ext>`. */
  file: string;
  media_type: string;
  size: number;
  sha256: string;
  metadata: Record<string, unknown> | null;
  /** The stage it was made in, if any. */
  stage: string | null;
  /** ISO 8601. */
  created_at: string;
}

/** Fields of run and stage rows that hold times (epoch microseconds in a row). */
export const TIME_FIELDS = [
  "started_at",
  "finished_at",
  "deadline_at",
  "owner_started_at",
  "last_heartbeat",
] as const;

/**
 * A row as JSON shows it, in the CLI and the API alike: the same fields, times as ISO 8601
 * text (to the millisecond).
 */
export function withIsoTimes<Row extends object>(row: Row): WithIsoTimes<Row> {
  const out: Record<string, unknown> = { ...(row as Record<string, unknown>) };
  for (const key of TIME_FIELDS) {
    const value = out[key];
    if (typeof value === "number") out[key] = isoOfMicros(value);
  }
  return out as WithIsoTimes<Row>;
}

/** A row type with its time fields as ISO 8601 text. */
export type WithIsoTimes<Row> = {
  [K in keyof Row]: K extends (typeof TIME_FIELDS)[number]
    ? null extends Row[K]
      ? string | null
      : string
    : Row[K];
};

/** One execution of a stage: one row of the `stages` table. */
export interface StageRow {
  run_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  seq: number;
  attempt: number;
  status: StageStatus;
  error_type: string | null;
  error_message: string | null;
  error_stack: string | null;
  started_at: number;
  finished_at: number | null;
  duration_seconds: number | null;
  rows_in: number | null;
  rows_out: number | null;
  llm_calls: number;
  tokens: number;
  input_tokens: number;
  output_tokens: number;
  metadata: Record<string, unknown> | null;
  /** Snapshot of the stage's output. */
  snapshot: string | null;
  /** Content address of the stage execution, when it could be cached. */
  cache_key: string | null;
  /** For a `cached` stage: the run whose output it reused. */
  cached_from: string | null;
}

/**
 * Of two rows of one run, the one to keep: a finished row over a running one, else the one
 * written later.
 */
export function laterRunRow(a: RunRow, b: RunRow): RunRow {
  const aFinished = a.status !== "running";
  const bFinished = b.status !== "running";
  if (aFinished !== bFinished) return aFinished ? a : b;
  return (b.last_heartbeat ?? 0) >= (a.last_heartbeat ?? 0) ? b : a;
}

/** One row per run id, the later of each. */
export function latestRunRows(rows: Iterable<RunRow>): RunRow[] {
  const byId = new Map<string, RunRow>();
  for (const row of rows) {
    const seen = byId.get(row.run_id);
    byId.set(row.run_id, seen === undefined ? row : laterRunRow(seen, row));
  }
  return [...byId.values()];
}
