import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { SqlParams } from "../query/sql-params.js";
import type { RunStatus } from "../record/run-status.js";
import { attachOptions } from "./open-store.js";
import { sqlString } from "./sql-literal.js";
import {
  artifactFolderOf,
  checkpointFolderOf,
  compactCopyOf,
  movedAsideOf,
  parseSnapshotRef,
  sharedCheckpointFolderOf,
  sharedSnapshotFolderOf,
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
  /** Artifact folders removed with their runs (for a dry run: that would be). */
  artifactFolders: number;
  /**
   * Snapshot files of this store that no remaining run or stage refers to, removed (for a dry
   * run: that would be). Only once some run goes.
   */
  snapshots: number;
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
 * transaction, then their artifact folders and the store's snapshots no run left uses. A dry
 * run counts the same things and changes nothing.
 */
export async function pruneRuns(
  session: StoreSession,
  options: PruneOptions,
): Promise<PruneResult> {
  const params = new SqlParams();
  const where = selection(options, params);
  const doomed = `SELECT run_id FROM runs WHERE ${where}`;
  // Snapshots written after this are not removed, whether counted or removed.
  const cutoff = Date.now() - (options.snapshotGraceMs ?? 3_600_000);
  const count = async () => {
    const row = await session.one<{ runs: number; stages: number }>(
      `SELECT (SELECT count(*) FROM runs WHERE ${where})::DOUBLE AS runs,
              (SELECT count(*) FROM stages WHERE run_id IN (${doomed}))::DOUBLE AS stages`,
      params.values,
    );
    return { runs: row?.runs ?? 0, stages: row?.stages ?? 0 };
  };
  const artifactFoldersOf = async () =>
    (
      await session.all<{ run_id: string }>(
        `SELECT run_id::VARCHAR AS run_id FROM runs WHERE ${where} AND artifacts IS NOT NULL`,
        params.values,
      )
    )
      .map((r) => artifactFolderOf(session.path, r.run_id))
      .filter((folder) => existsSync(folder));
  if (options.dryRun) {
    const counted = await count();
    const folders = await artifactFoldersOf();
    const snapshots =
      counted.runs > 0 ? await unusedSnapshots(session, cutoff, { doomed, params }) : [];
    return { ...counted, artifactFolders: folders.length, snapshots: snapshots.length };
  }
  const folders = await artifactFoldersOf();
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
  for (const folder of folders) {
    if (!existsSync(folder)) continue;
    rmSync(folder, { recursive: true, force: true });
    artifactFolders++;
  }
  let snapshots = 0;
  if (result.runs > 0) {
    for (const file of await unusedSnapshots(session, cutoff)) {
      rmSync(file, { force: true });
      snapshots++;
    }
    if (snapshots > 0) await dropDanglingCheckpoints(session.path);
  }
  return { ...result, artifactFolders, snapshots };
}

/**
 * The snapshot files of the store that no run or stage of it refers to (leaving out the runs
 * `without` selects, and their stages) whose files were last written or used before `cutoff`
 * (epoch ms). Snapshots are shared by content, so one stays while any run still uses it.
 *
 * Only files that are surely this store's are candidates: those in its own folder, and those in
 * the folder earlier versions shared between the stores of a folder only while no other store
 * lives in that folder. A file that may be another store's is never counted, never removed.
 */
async function unusedSnapshots(
  session: StoreSession,
  cutoff: number,
  without?: { doomed: string; params: SqlParams },
): Promise<string[]> {
  const folders = [snapshotFolderOf(session.path)];
  if (!sharesFolder(session.path)) folders.push(sharedSnapshotFolderOf(session.path));
  if (!folders.some((folder) => existsSync(folder))) return [];
  const kept = without ? `run_id NOT IN (${without.doomed})` : "true";
  const referenced = new Set(
    (
      await session.all<{ ref: string }>(
        `SELECT snapshot AS ref FROM stages WHERE snapshot IS NOT NULL AND ${kept}
         UNION SELECT input_snapshot FROM runs WHERE input_snapshot IS NOT NULL AND ${kept}`,
        without?.params.values,
      )
    ).map((r) => parseSnapshotRef(r.ref)?.sha),
  );
  const unused: string[] = [];
  for (const folder of folders) {
    for (const shard of entriesOf(folder)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      const shardFolder = join(folder, shard);
      for (const file of entriesOf(shardFolder)) {
        const match = /^([0-9a-f]{64})\.(json|bin)$/.exec(file);
        if (match === null || referenced.has(match[1] as string)) continue;
        const path = join(shardFolder, file);
        let modified: number;
        try {
          modified = statSync(path).mtimeMs;
        } catch {
          continue;
        }
        if (modified <= cutoff) unused.push(path);
      }
    }
  }
  return unused.sort();
}

function entriesOf(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

/**
 * Whether another store may live in the store's folder, and so have kept snapshots and
 * checkpoints in the folders earlier versions shared: a DuckDB database file there (its bytes
 * 8 to 11 say `DUCK`) that is not this store, its write-ahead log, or a copy compacting it made
 * or a damaged copy moved aside. A file (or a folder) that cannot be read may be one, and
 * counts.
 */
function sharesFolder(storePath: string): boolean {
  const folder = dirname(storePath);
  let own: Stats;
  let entries: string[];
  try {
    own = statSync(storePath);
    entries = readdirSync(folder);
  } catch {
    return true;
  }
  const name = basename(storePath);
  const ownCopies = [basename(compactCopyOf(storePath, "")), basename(movedAsideOf(storePath, ""))];
  for (const entry of entries) {
    if (entry === `${name}.wal` || ownCopies.some((prefix) => entry.startsWith(prefix))) continue;
    const file = join(folder, entry);
    let handle: number | undefined;
    try {
      const stat = statSync(file);
      if (!stat.isFile() || stat.size < 12) continue;
      if (stat.dev === own.dev && stat.ino === own.ino) continue;
      handle = openSync(file, "r");
      const header = Buffer.alloc(12);
      readSync(handle, header, 0, 12, 0);
      if (header.subarray(8, 12).toString("latin1") === "DUCK") return true;
    } catch {
      return true;
    } finally {
      if (handle !== undefined) closeSync(handle);
    }
  }
  return false;
}

/**
 * Checkpoints whose snapshots are gone can never be used again: those of the store's own
 * folder, and those of the folder earlier versions shared while no other store lives there.
 */
async function dropDanglingCheckpoints(storePath: string): Promise<void> {
  const folders = [checkpointFolderOf(storePath)];
  if (!sharesFolder(storePath)) folders.push(sharedCheckpointFolderOf(storePath));
  for (const folder of folders) {
    for (const file of entriesOf(folder)) {
      // Only checkpoint files, named by their key: the old shared folder may hold others.
      if (!/^[0-9a-f]{64}\.json$/.test(file)) continue;
      const path = join(folder, file);
      try {
        const checkpoint = JSON.parse(await readFile(path, "utf8")) as {
          snapshot?: string;
          stages?: { snapshot: string }[];
        };
        const refs = [
          checkpoint.snapshot ?? "",
          ...(checkpoint.stages ?? []).map((s) => s.snapshot),
        ];
        if (refs.every((ref) => snapshotExists(storePath, ref))) continue;
      } catch {
        // An unreadable checkpoint is of no use either.
      }
      rmSync(path, { force: true });
    }
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
  // The file itself, where the store's path is a link: the link stays, and so do the folders
  // named after the file.
  const path = realpathSync(session.path);
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
