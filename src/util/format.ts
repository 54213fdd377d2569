/** Formatting of run values as the CLI and the web pages show them. */
import type { RunRow } from "../record/rows.js";
import { PAST_TRACE_DIGITS, SHORT_ID_DIGITS, uuidPrefix } from "../record/run-id.js";
import { formatSeconds } from "./duration.js";

/** `2026-11-23 14:23:15` (UTC) of epoch microseconds. */
export function formatTime(micros: number | null): string {
  if (micros === null) return "-";
  return new Date(Math.floor(micros / 1000)).toISOString().slice(0, 19).replace("T", " ");
}

export function formatCount(value: number | null): string {
  return value === null ? "-" : Math.round(value).toLocaleString("en-US");
}

/** A size in bytes, in decimal units: `512 B`, `12.3 kB`, `4.5 MB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    // 999.96 kB would show as 1000.0 kB: that is 1.0 MB.
    if (value < 999.95) break;
    value /= 1000;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

/**
 * The first digits of a run id, enough to tell it at a glance: 8, or for a run nested in a
 * trace (given its trace id) 20, since every run of a trace shares its first 16 with it.
 */
export function shortId(runId: string, traceId?: string | null): string {
  const nested = traceId != null && runId.replaceAll("-", "") !== traceId.toLowerCase();
  return uuidPrefix(runId, nested ? PAST_TRACE_DIGITS : SHORT_ID_DIGITS);
}

/** Duration of a finished run, or its time so far with a trailing "…" while it runs. */
export function formatRunDuration(run: RunRow, nowMs: number = Date.now()): string {
  if (run.duration_seconds !== null) return formatSeconds(run.duration_seconds);
  if (run.status === "running")
    return `${formatSeconds(Math.max(0, nowMs * 1000 - run.started_at) / 1e6)}…`;
  return "-";
}

/** Stages done: "k/n" when the run declared n stages, else "k". */
export function formatProgress(run: RunRow): string {
  return run.stages_expected === null
    ? String(run.stages_completed)
    : `${run.stages_completed}/${run.stages_expected}`;
}

export function formatPercent(rate: number | null): string {
  return rate === null ? "-" : `${(rate * 100).toFixed(1)}%`;
}
