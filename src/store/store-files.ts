import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  openSync,
  readlinkSync,
  readSync,
  realpathSync,
  statSync,
} from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { claimPathOf } from "./server-claim.js";
import { spoolDirsOf } from "./store-path.js";
import { readerWantedFileOf, wantedFileOf } from "./store-wanted.js";

/**
 * Files kept next to the store, in its folder: what a run keeps besides its rows.
 *
 * - `artifacts/<run_id>/NN_<kind>.<ext>`: a run's artifacts, numbered in order of creation
 *   (run ids are unique, so stores in one folder share this one).
 * - `<store>.snapshots/<first two hex digits>/<sha256>.<json|bin>`: the store's stage outputs
 *   and run inputs, addressed by the SHA-256 of their bytes, so equal outputs are stored once.
 * - `<store>.checkpoints/<key>.json`: what a stage (or a whole run) with that content address
 *   produced.
 *
 * `<store>` is the store's file name, with symbolic links followed: two stores in one folder
 * never share a snapshot, so pruning one never removes what the other uses. Earlier, snapshots
 * and checkpoints were kept in `snapshots/` and `checkpoints/`, shared by every store in the
 * folder; they are still read from there, never written.
 */
function storeFolderOf(storePath: string): string {
  return dirname(storePath);
}

const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The folder of the runs' artifact folders. */
function artifactsFolderOf(storePath: string): string {
  return join(storeFolderOf(storePath), "artifacts");
}

/** The artifact folder of a run; a run id that is not a UUID has none. */
export function artifactFolderOf(storePath: string, runId: string): string {
  if (!RUN_ID.test(runId)) throw new RangeError(`"${runId}" is not a run id`);
  return join(artifactsFolderOf(storePath), runId);
}

/** The copy of a store that compacting it writes, by the process `tag` names. */
export function compactCopyOf(storePath: string, tag: string): string {
  return `${storePath}.compact-${tag}`;
}

/** Where a damaged store is moved aside to, at the time `tag` names. */
export function movedAsideOf(storePath: string, tag: string): string {
  return `${storePath}.corrupt-${tag}`;
}

/** The folder of a store's snapshots: `runs.duckdb.snapshots`, next to the store's file. */
export function snapshotFolderOf(storePath: string): string {
  return `${realPathOf(storePath)}.snapshots`;
}

/**
 * The folder where snapshots were kept before each store had its own: `snapshots/` in the
 * store's folder, shared by every store there. Read, never written.
 */
export function sharedSnapshotFolderOf(storePath: string): string {
  return join(storeFolderOf(storePath), "snapshots");
}

/** The snapshot reference of `undefined`: nothing is kept, there is no file. */
export const NO_SNAPSHOT = "none";

const SNAPSHOT_REF = /^(json|bytes):([0-9a-f]{64})$/;

/**
 * The parts of a snapshot reference (`json:<sha256>` or `bytes:<sha256>`); undefined for
 * {@link NO_SNAPSHOT} and for anything that is not a reference.
 */
export function parseSnapshotRef(
  ref: string,
): { format: "json" | "bytes"; sha: string } | undefined {
  const match = SNAPSHOT_REF.exec(ref);
  if (match === null) return undefined;
  return { format: match[1] as "json" | "bytes", sha: match[2] as string };
}

/** The name of a snapshot's file in its folder: `ab/ab12…ef.json` (or `.bin` for bytes). */
function snapshotNameOf(ref: string): string | undefined {
  const parsed = parseSnapshotRef(ref);
  if (parsed === undefined) return undefined;
  const { format, sha } = parsed;
  return join(sha.slice(0, 2), `${sha}.${format === "json" ? "json" : "bin"}`);
}

/**
 * The folders a store's snapshots are read from, in order: its own, where they are written,
 * then the one shared by the stores of its folder, where earlier versions wrote them. Resolved
 * once by those who look up many snapshots: the store's path has its links followed.
 */
export function snapshotFoldersOf(storePath: string): readonly [string, string] {
  return [snapshotFolderOf(storePath), sharedSnapshotFolderOf(storePath)];
}

/**
 * The file a snapshot is written to, in the store's own folder; undefined for
 * {@link NO_SNAPSHOT} and for anything that is not a reference.
 */
export function snapshotFileOf(storePath: string, ref: string): string | undefined {
  const name = snapshotNameOf(ref);
  return name === undefined ? undefined : join(snapshotFolderOf(storePath), name);
}

/** The files a snapshot is read from, in the order of `folders`; none for a non-reference. */
export function snapshotFilesIn(folders: readonly string[], ref: string): string[] {
  const name = snapshotNameOf(ref);
  return name === undefined ? [] : folders.map((folder) => join(folder, name));
}

/** Whether a snapshot can be read from one of `folders`, or it is {@link NO_SNAPSHOT}. */
export function snapshotIn(folders: readonly string[], ref: string): boolean {
  if (ref === NO_SNAPSHOT) return true;
  return snapshotFilesIn(folders, ref).some((file) => existsSync(file));
}

/** The folder of a store's checkpoints: `runs.duckdb.checkpoints`, next to the store's file. */
export function checkpointFolderOf(storePath: string): string {
  return `${realPathOf(storePath)}.checkpoints`;
}

/**
 * The folder where checkpoints were kept before each store had its own, shared by every store
 * in the store's folder. Read, never written.
 */
export function sharedCheckpointFolderOf(storePath: string): string {
  return join(storeFolderOf(storePath), "checkpoints");
}

/**
 * Writes a file so that it appears whole or not at all: into a hidden temporary file in the
 * same folder, flushed to disk, then renamed into place. A crash leaves at most a
 * `.<name>.partial-*` file, never a partial file under the real name.
 */
export async function writeFileAtomically(
  path: string,
  content: Uint8Array | string,
): Promise<void> {
  const folder = dirname(path);
  await mkdir(folder, { recursive: true });
  const temporary = join(
    folder,
    `.${path.slice(folder.length + 1)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  const handle = await open(temporary, "wx", 0o644);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * A path as the file system takes it: absolute, with symbolic links followed, also for a file
 * that is not there yet (the links of its folders are followed) and for a link to one.
 */
function realPathOf(path: string, links = 0): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute || links > 32) return absolute;
    let target: string | undefined;
    try {
      target = readlinkSync(absolute);
    } catch {
      // Not a link: a file that is not there yet.
    }
    if (target !== undefined) return realPathOf(resolve(parent, target), links + 1);
    return join(realPathOf(parent, links), basename(absolute));
  }
}

/** The DuckDB file format's magic, after the header's checksum. */
const DUCKDB_MAGIC = Buffer.from("DUCK");
const DUCKDB_MAGIC_AT = 8;

/**
 * What a file's first bytes say it is: a DuckDB database (`DUCK` at bytes 8 to 11), an empty
 * file, or something else; undefined when it cannot be read.
 */
export function fileKindOf(path: string): "duckdb" | "empty" | "other" | undefined {
  const head = Buffer.alloc(DUCKDB_MAGIC_AT + DUCKDB_MAGIC.length);
  let read: number;
  try {
    const fd = openSync(path, "r");
    try {
      read = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (read === 0) return "empty";
  return head.subarray(DUCKDB_MAGIC_AT).equals(DUCKDB_MAGIC) ? "duckdb" : "other";
}

/** Whether two paths are one file that exists (a hard link included). */
function sameFile(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Whether writing `file` would write over the store or a file runtrail keeps for it: its
 * write-ahead log, the claim of the server holding it, the file asking for it, a copy made while
 * compacting it, a damaged store moved aside, and what is in its spool folders, in DuckDB's
 * folder for data that does not fit in memory, and in its artifact, snapshot and checkpoint
 * folders. Symbolic links are followed, of both paths.
 */
export function isStoreFile(storePath: string, file: string): boolean {
  const target = realPathOf(file);
  for (const store of new Set([resolve(storePath), realPathOf(storePath)])) {
    const files = [
      store,
      `${store}.wal`,
      claimPathOf(store),
      wantedFileOf(store),
      readerWantedFileOf(store),
    ];
    if (files.some((f) => realPathOf(f) === target || sameFile(f, target))) return true;
    // The claim's own temporary file, and every copy compacting or moving aside makes.
    const prefixes = [`${claimPathOf(store)}.`, compactCopyOf(store, ""), movedAsideOf(store, "")];
    if (prefixes.some((p) => target.startsWith(realPathOf(p)))) return true;
    const folders = [
      `${store}.tmp`,
      ...spoolDirsOf(store).map((d) => d.path),
      artifactsFolderOf(store),
      snapshotFolderOf(store),
      checkpointFolderOf(store),
      sharedSnapshotFolderOf(store),
      sharedCheckpointFolderOf(store),
    ];
    for (const folder of folders.map((f) => realPathOf(f))) {
      if (target === folder || target.startsWith(`${folder}${sep}`)) return true;
    }
  }
  return false;
}
