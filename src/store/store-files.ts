import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

/**
 * Files kept next to the store, in its folder: what a run keeps besides its rows.
 *
 * - `artifacts/<run_id>/NN_<kind>.<ext>`: a run's artifacts, numbered in order of creation.
 * - `snapshots/<first two hex digits>/<sha256>.<json|bin>`: stage outputs and run inputs,
 *   addressed by the SHA-256 of their bytes, so equal outputs are stored once.
 * - `checkpoints/<key>.json`: what a stage (or a whole run) with that content address produced.
 */
function storeFolderOf(storePath: string): string {
  return dirname(storePath);
}

const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The artifact folder of a run; a run id that is not a UUID has none. */
export function artifactFolderOf(storePath: string, runId: string): string {
  if (!RUN_ID.test(runId)) throw new RangeError(`"${runId}" is not a run id`);
  return join(storeFolderOf(storePath), "artifacts", runId);
}

export function snapshotFolderOf(storePath: string): string {
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

/**
 * The file of a snapshot reference; undefined for {@link NO_SNAPSHOT} and for anything that is
 * not a reference.
 */
export function snapshotFileOf(storePath: string, ref: string): string | undefined {
  const parsed = parseSnapshotRef(ref);
  if (parsed === undefined) return undefined;
  const { format, sha } = parsed;
  return join(
    snapshotFolderOf(storePath),
    sha.slice(0, 2),
    `${sha}.${format === "json" ? "json" : "bin"}`,
  );
}

/** Whether a snapshot can be read: its file is there, or it is {@link NO_SNAPSHOT}. */
export function snapshotExists(storePath: string, ref: string): boolean {
  if (ref === NO_SNAPSHOT) return true;
  const file = snapshotFileOf(storePath, ref);
  return file !== undefined && existsSync(file);
}

export function checkpointFolderOf(storePath: string): string {
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
