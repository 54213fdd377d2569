import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { SqlParams } from "../query/sql-params.js";
import type { RunStatus } from "../record/run-status.js";
import { attachOptions } from "./open-store.js";
import { sqlString } from "./sql-literal.js";
import {
  artifactFolderOf,
  checkpointFolderOf,
  compactCopyOf,
  parseSnapshotRef,
  snapshotExists,
  snapshotFolderOf,
} from "./store-files.js";
import { STORE_ALIAS, type StoreSession } from "./store-session.js";

export interface PruneOptions {
  /** Runs that started before this time (epoch microseconds) go. */
  before: number;
  /** Only runs with these statuses. Running runs are never pruned. */
  statuses?: readonly RunStatus[];
  /** Only runs of this tenant. */
  tenant?: string;
  /** Count what would go, change nothing. */
  dryRun: boolean;
  /**
   * Snapshots no run or stage refers to any more are deleted once they are this old: a
   * pipeline may have written one whose row has not reached the store yet. Default 1 hour.
   */
  snapshotGraceMs?: number;
}

export interface PruneResult {
  runs: number;
  stages: number;
  /** Artifact folders removed with their runs. */
  artifactFolders?: number;
  /** Snapshot files no remaining run refers to, removed. */
  snapshots?: number;
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
  const withArtifacts = await session.all<{ run_id: string }>(
    `SELECT run_id::VARCHAR AS run_id FROM runs WHERE ${where} AND artifacts IS NOT NULL`,
    params.values,
  );
  const result = await session.transaction(async () => {
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
  // The rows are gone: their files go after them, so no row is left pointing at nothing.
  let artifactFolders = 0;
  for (const { run_id } of withArtifacts) {
    const folder = artifactFolderOf(session.path, run_id);
    if (existsSync(folder)) {
      rmSync(folder, { recursive: true, force: true });
      artifactFolders++;
    }
  }
  const snapshots =
    result.runs > 0 ? await collectSnapshots(session, options.snapshotGraceMs ?? 3_600_000) : 0;
  return { ...result, artifactFolders, snapshots };
}

/**
 * Deletes snapshot files that no run or stage of the store refers to and that are older than
 * `graceMs`, then the checkpoints that named them. Snapshots are shared by content, so one
 * stays while any run still uses it.
 */
async function collectSnapshots(session: StoreSession, graceMs: number): Promise<number> {
  const folder = snapshotFolderOf(session.path);
  if (!existsSync(folder)) return 0;
  const referenced = new Set(
    (
      await session.all<{ ref: string }>(
        `SELECT snapshot AS ref FROM stages WHERE snapshot IS NOT NULL
         UNION SELECT input_snapshot FROM runs WHERE input_snapshot IS NOT NULL`,
      )
    ).map((r) => parseSnapshotRef(r.ref)?.sha),
  );
  const cutoff = Date.now() - graceMs;
  let removed = 0;
  for (const shard of readdirSync(folder)) {
    const shardFolder = join(folder, shard);
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    for (const file of readdirSync(shardFolder)) {
      const match = /^([0-9a-f]{64})\.(json|bin)$/.exec(file);
      if (match === null || referenced.has(match[1] as string)) continue;
      const path = join(shardFolder, file);
      if (statSync(path).mtimeMs > cutoff) continue;
      rmSync(path, { force: true });
      removed++;
    }
  }
  if (removed > 0) await dropDanglingCheckpoints(session.path);
  return removed;
}

/** Checkpoints whose snapshots are gone can never be used again. */
async function dropDanglingCheckpoints(storePath: string): Promise<void> {
  const folder = checkpointFolderOf(storePath);
  if (!existsSync(folder)) return;
  for (const file of readdirSync(folder)) {
    if (!file.endsWith(".json")) continue;
    const path = join(folder, file);
    try {
      const checkpoint = JSON.parse(await readFile(path, "utf8")) as {
        snapshot?: string;
        stages?: { snapshot: string }[];
      };
      const refs = [checkpoint.snapshot ?? "", ...(checkpoint.stages ?? []).map((s) => s.snapshot)];
      if (refs.every((ref) => snapshotExists(storePath, ref))) continue;
    } catch {
      // An unreadable checkpoint is of no use either.
    }
    rmSync(path, { force: true });
  }
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
  const target = compactCopyOf(path, String(process.pid));
  rmSync(target, { force: true });
  await session.run("CHECKPOINT");
  await session.run(`ATTACH ${sqlString(target)} AS runtrail_compact ${attachOptions()}`);
  try {
    await session.run(`COPY FROM DATABASE ${STORE_ALIAS} TO runtrail_compact`);
  } finally {
    await session.run("DETACH runtrail_compact");
  }
  await session.run("PRAGMA disable_checkpoint_on_shutdown");
  if (existsSync(`${target}.wal`)) rmSync(`${target}.wal`);
  renameSync(target, path);
  return { bytesBefore, bytesAfter: statSync(path).size };
}
