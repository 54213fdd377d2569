import type { RunRow, StageRow } from "../../src/record/rows.js";

/**
 * A run row with every field: the ones given, and for the rest no error, nothing declared, no
 * counts and no owner. Times in epoch microseconds, as the store takes them.
 */
export function blankRun(
  fields: Pick<RunRow, "run_id" | "trace_id" | "span_id" | "pipeline" | "status" | "started_at"> &
    Partial<RunRow>,
): RunRow {
  return {
    tenant_id: null,
    service_name: null,
    status_reason: null,
    error: null,
    error_type: null,
    error_message: null,
    error_stack: null,
    failed_stage: null,
    input_fingerprint: null,
    code_ref: null,
    config_hash: null,
    finished_at: null,
    duration_seconds: null,
    deadline_at: null,
    rows_in: null,
    rows_out: null,
    llm_calls: 0,
    tokens: 0,
    input_tokens: 0,
    output_tokens: 0,
    stages_expected: null,
    stages_completed: 0,
    stages_executed: [],
    stages_failed: [],
    retry_count: 0,
    current_stage: null,
    metadata: null,
    owner_host: null,
    owner_pid: null,
    owner_started_at: null,
    last_heartbeat: null,
    resumed_from: null,
    cached_from: null,
    entry_point: null,
    input_snapshot: null,
    artifacts: null,
    ...fields,
  };
}

/**
 * A stage row with every field: the ones given, and for the rest attempt 1, no error, no
 * counts, nothing reused. Times in epoch microseconds, as the store takes them.
 */
export function blankStage(
  fields: Pick<StageRow, "run_id" | "span_id" | "name" | "seq" | "status" | "started_at"> &
    Partial<StageRow>,
): StageRow {
  return {
    parent_span_id: null,
    attempt: 1,
    error_type: null,
    error_message: null,
    error_stack: null,
    finished_at: null,
    duration_seconds: null,
    rows_in: null,
    rows_out: null,
    llm_calls: 0,
    tokens: 0,
    input_tokens: 0,
    output_tokens: 0,
    metadata: null,
    snapshot: null,
    cache_key: null,
    cached_from: null,
    ...fields,
  };
}
