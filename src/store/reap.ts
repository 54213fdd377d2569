import { hostname } from "node:os";
import { formatSeconds, isoOfMicros } from "../util/duration.js";
import { ownerAlive } from "./process-owner.js";
import type { StoreSession } from "./store-session.js";

/** Default time without a heartbeat after which a running run counts as crashed. */
export const DEFAULT_STALE_AFTER_MS = 120_000;

/**
 * Default time without a span after which a run recorded from OTLP (no owning process to ask)
 * counts as crashed: long, since a remote pipeline exports in batches and its stages may run
 * for minutes without a span ending.
 */
export const DEFAULT_SILENT_AFTER_MS = 30 * 60_000;

export interface ReapOptions {
  /** A running run with no heartbeat for this long is crashed. */
  staleAfterMs: number;
  /**
   * A running run recorded from OTLP (no owning process) that no span arrived for in this long
   * is crashed. Default {@link DEFAULT_SILENT_AFTER_MS}, 30 minutes.
   */
  silentAfterMs?: number;
  /** Epoch milliseconds; default now. */
  now?: number;
  /** This host's name; default `os.hostname()`. */
  host?: string;
}

export interface ReapedRun {
  run_id: string;
  pipeline: string;
  reason: string;
}

interface OpenRun {
  run_id: string;
  pipeline: string;
  owner_host: string | null;
  owner_pid: number | null;
  owner_started_at: number | null;
  started_at: number;
  seen: number;
}

/**
 * Marks running runs whose owner is gone as `crashed`: on this host when the owning process no
 * longer exists (or its pid now belongs to another process); for runs owned elsewhere, or by
 * no known process, when no heartbeat came for `staleAfterMs`. The run's end is set to its
 * last sign of life, and the stage it was in becomes its failed stage (unless it has one).
 */
export async function reapCrashedRuns(
  session: StoreSession,
  options: ReapOptions,
): Promise<ReapedRun[]> {
  const now = (options.now ?? Date.now()) * 1000;
  const host = options.host ?? hostname();
  const open = await session.all<OpenRun>(
    `SELECT run_id::VARCHAR AS run_id, pipeline, owner_host, owner_pid,
       epoch_us(owner_started_at)::DOUBLE AS owner_started_at,
       epoch_us(started_at)::DOUBLE AS started_at,
       epoch_us(coalesce(last_heartbeat, started_at))::DOUBLE AS seen
     FROM runs WHERE status = 'running'`,
  );
  const reaped: (ReapedRun & { seen: number; started_at: number })[] = [];
  for (const run of open) {
    const reason = crashReason(
      run,
      host,
      now,
      options.staleAfterMs * 1000,
      (options.silentAfterMs ?? DEFAULT_SILENT_AFTER_MS) * 1000,
    );
    if (reason !== null) reaped.push({ ...run, reason });
  }
  if (reaped.length === 0) return [];
  for (const run of reaped) session.watcher?.runChanged(run.run_id);
  await session.transaction(async () => {
    for (const run of reaped) {
      await session.run(
        `UPDATE runs SET status = 'crashed', status_reason = $2,
           finished_at = make_timestamptz($3::BIGINT), duration_seconds = $4,
           failed_stage = coalesce(failed_stage, current_stage), current_stage = NULL
         WHERE run_id = $1::UUID AND status = 'running'`,
        [run.run_id, run.reason, run.seen, Math.max(0, run.seen - run.started_at) / 1e6],
      );
    }
  });
  return reaped.map(({ run_id, pipeline, reason }) => ({ run_id, pipeline, reason }));
}

function crashReason(
  run: OpenRun,
  host: string,
  now: number,
  staleUs: number,
  silentUs: number,
): string | null {
  if (run.owner_host === host && run.owner_pid !== null) {
    // On its own host the owner's existence is a fact; a live but silent run is stuck, not crashed.
    if (ownerAlive(run.owner_pid, run.owner_started_at)) return null;
    return `its process (pid ${run.owner_pid} on ${host}) is gone; last sign of life ${isoOfMicros(run.seen)}`;
  }
  const silence = now - run.seen;
  if (run.owner_host === null && run.owner_pid === null) {
    // Recorded from OTLP: its spans are its only signs of life, and its run span never came.
    if (silence <= silentUs) return null;
    return `no span of the run arrived for ${formatSeconds(silence / 1e6)} and its run span never did (last span ${isoOfMicros(run.seen)})`;
  }
  if (silence > staleUs) {
    return `no heartbeat for ${formatSeconds(silence / 1e6)} (last ${isoOfMicros(run.seen)})`;
  }
  return null;
}
