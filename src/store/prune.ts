import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import { SqlParams } from "../query/sql-params.js";
import type { RunStatus } from "../record/run-status.js";
import { sqlIdentifier, sqlString } from "./sql-literal.js";
import type { StoreSession } from "./store-session.js";

export interface PruneOptions {
  /** Runs that started before this time (epoch microseconds) go. */
  before: number;
  /** Only runs with these statuses. Running runs are never pruned. */
  statuses?: readonly RunStatus[];
  /** Only runs of this tenant. */
  tenant?: string;
  /** Count what would go, change nothing. */
  dryRun: boolean;
}

export interface PruneResult {
  runs: number;
  stages: number;
}

function selection(options: PruneOptions, params: SqlParams): string {
  const conditions = [
    `started_at < make_timestamptz(${params.add(options.before)}::BIGINT)`,
    "status <> 'running'",
  ];
  if (options.statuses && options.statuses.length > 0) {
    conditions.push(`status IN (${options.statuses.map((s) => params.add(s)).join(", ")})`);
  }
  if (options.tenant !== undefined) conditions.push(`tenant_id = ${params.add(options.tenant)}`);
  return conditions.join(" AND ");
}

/**
 * Deletes old runs, their stages and the spans the OTLP receiver kept of them, in one
 * transaction (or counts them, for a dry run).
 */
export async function pruneRuns(
  session: StoreSession,
  options: PruneOptions,
): Promise<PruneResult> {
  const params = new SqlParams();
  const where = selection(options, params);
  const doomed = `SELECT run_id FROM runs WHERE ${where}`;
  const count = async (): Promise<PruneResult> => {
    const row = await session.one<{ runs: number; stages: number }>(
      `SELECT (SELECT count(*) FROM runs WHERE ${where})::DOUBLE AS runs,
              (SELECT count(*) FROM stages WHERE run_id IN (${doomed}))::DOUBLE AS stages`,
      params.values,
    );
    return { runs: row?.runs ?? 0, stages: row?.stages ?? 0 };
  };
  if (options.dryRun) return count();
  return session.transaction(async () => {
    const result = await count();
    await session.run(`DELETE FROM stages WHERE run_id IN (${doomed})`, params.values);
    // What the OTLP receiver kept of the runs' spans goes with them.
    await session.run(
      `DELETE FROM otlp_spans WHERE trace_id IN (SELECT trace_id FROM runs WHERE ${where})`,
      params.values,
    );
    await session.run(`DELETE FROM runs WHERE ${where}`, params.values);
    return result;
  });
}

/**
 * Gives the space of deleted rows back to the file system. DuckDB reuses freed blocks but does
 * not shrink its file, so the store is copied into a new file that then takes its place. The
 * rename happens while this session still holds the old file, so no other process can write
 * to it in between; the old handle then closes without a checkpoint. Returns the sizes.
 */
export async function compactStore(
  session: StoreSession,
): Promise<{ bytesBefore: number; bytesAfter: number }> {
  const path = session.path;
  const bytesBefore = statSync(path).size;
  const target = `${path}.compact-${process.pid}`;
  rmSync(target, { force: true });
  await session.run("CHECKPOINT");
  const database = await session.one<{ name: string }>("SELECT current_database() AS name");
  await session.run(`ATTACH ${sqlString(target)} AS runtrail_compact`);
  try {
    await session.run(
      `COPY FROM DATABASE ${sqlIdentifier(database?.name ?? "main")} TO runtrail_compact`,
    );
  } finally {
    await session.run("DETACH runtrail_compact");
  }
  await session.run("PRAGMA disable_checkpoint_on_shutdown");
  if (existsSync(`${target}.wal`)) rmSync(`${target}.wal`);
  renameSync(target, path);
  return { bytesBefore, bytesAfter: statSync(path).size };
}
