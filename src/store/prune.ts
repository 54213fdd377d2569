import {
  existsSync,
  readdirSync,
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
  fileKindOf,
  movedAsideOf,
  parseSnapshotRef,
  sharedCheckpointFolderOf,
  sharedSnapshotFolderOf,
  snapshotFolderOf,
  snapshotFoldersOf,
  snapshotIn,
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

/**
 * What a prune did as JSON gives it, snake_case as every JSON of runtrail's: the answer of
 * `DELETE /api/runs`, and what `runtrail prune --json` prints (with the space given back).
 */
export function pruneResultJson(result: PruneResult, dryRun: boolean) {
  return {
    runs: result.runs,
    stages: result.stages,
    artifact_folders: result.artifactFolders,
    snapshots: result.snapshots,
    dry_run: dryRun,
  };
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
  // Whether the folders earlier versions shared are this store's alone: looked at once.
  const owned = ownedFolders(session.path);
  if (options.dryRun) {
    const counted = await count();
    const folders = await artifactFoldersOf();
    const snapshots =
      counted.runs > 0 ? await unusedSnapshots(session, owned, cutoff, { doomed, params }) : [];
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
    for (const file of await unusedSnapshots(session, owned, cutoff)) {
      rmSync(file, { force: true });
      snapshots++;
    }
    if (snapshots > 0) await dropDanglingCheckpoints(session.path, owned);
  }
  return { ...result, artifactFolders, snapshots };
}

/**
 * The folders of a store's snapshots and of its checkpoints that prune may remove files from:
 * its own, and those earlier versions shared between the stores of a folder only while no
 * other store lives in that folder. A file that may be another store's is never counted, never
 * removed.
 */
interface OwnedFolders {
  snapshots: string[];
  checkpoints: string[];
}

function ownedFolders(storePath: string): OwnedFolders {
  const alone = !sharesFolder(storePath);
  return {
    snapshots: [snapshotFolderOf(storePath), ...(alone ? [sharedSnapshotFolderOf(storePath)] : [])],
    checkpoints: [
      checkpointFolderOf(storePath),
      ...(alone ? [sharedCheckpointFolderOf(storePath)] : []),
    ],
  };
}

/**
 * The snapshot files of the store's `owned` folders that no run or stage of it refers to
 * (leaving out the runs `without` selects, and their stages) whose files were last written or
 * used before `cutoff` (epoch ms). Snapshots are shared by content, so one stays while any run
 * still uses it.
 */
async function unusedSnapshots(
  session: StoreSession,
  owned: OwnedFolders,
  cutoff: number,
  without?: { doomed: string; params: SqlParams },
): Promise<string[]> {
  const folders = owned.snapshots;
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
    try {
      const stat = statSync(file);
      if (!stat.isFile() || (stat.dev === own.dev && stat.ino === own.ino)) continue;
    } catch {
      return true;
    }
    const kind = fileKindOf(file);
    if (kind === "duckdb" || kind === undefined) return true;
  }
  return false;
}

/**
 * Checkpoints of the store's `owned` folders whose snapshots are gone: they can never be used
 * again.
 */
async function dropDanglingCheckpoints(storePath: string, owned: OwnedFolders): Promise<void> {
  const snapshots = snapshotFoldersOf(storePath);
  for (const folder of owned.checkpoints) {
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
        if (refs.every((ref) => snapshotIn(snapshots, ref))) continue;
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
