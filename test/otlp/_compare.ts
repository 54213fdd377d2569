import type { RunRow } from "../../src/record/rows.js";

/** Fields only the in-process path knows: the process that owns the run, and when it wrote. */
const PROCESS_FIELDS = ["owner_host", "owner_pid", "owner_started_at", "last_heartbeat"] as const;

/** A run row without the fields only the in-process path knows, to compare with OTLP's. */
export function comparable(run: RunRow): Partial<RunRow> {
  const copy: Partial<RunRow> = { ...run };
  for (const field of PROCESS_FIELDS) delete copy[field];
  return copy;
}

export function byRunId(a: RunRow, b: RunRow): number {
  return a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0;
}
