import { createHash } from "node:crypto";
import { readFile, utimes } from "node:fs/promises";
import { join } from "node:path";
import {
  checkpointFolderOf,
  NO_SNAPSHOT,
  parseSnapshotRef,
  sharedCheckpointFolderOf,
  snapshotFilesIn,
  snapshotFoldersOf,
  snapshotIn,
  writeFileAtomically,
} from "../store/store-files.js";

/**
 * A reference to a snapshot, as stage and run rows keep it: `json:<sha256>` for a value kept as
 * its JSON text, `bytes:<sha256>` for bytes kept as they are, `none` for `undefined`.
 */
export type SnapshotRef = string;

/** A value cannot be snapshotted, or a snapshot cannot be read. */
class SnapshotError extends Error {
  override name = "SnapshotError";
}

/** What a checkpoint file says: the output a stage (or a whole run) with its key produced. */
export interface Checkpoint {
  /** The output. */
  snapshot: SnapshotRef;
  /** The run that produced it. */
  run_id: string;
  /** The stage that produced it; for a whole run, none. */
  stage: string | null;
  /** For a whole run: each stage's name and output, in order. */
  stages?: { name: string; snapshot: SnapshotRef }[];
  created_at: string;
}

/**
 * Snapshots and checkpoints of a store, in folders of its own next to it
 * (`runs.duckdb.snapshots`, `runs.duckdb.checkpoints`). Snapshots are addressed by the SHA-256
 * of their bytes: writing one that exists costs a hash and a lookup. Those that earlier
 * versions kept in the folders shared by the stores of a folder are read from there too.
 */
export class SnapshotStore {
  /** Where snapshots are read from, in order; the first is where they are written. */
  private readonly snapshots: readonly [string, string];
  /** Where checkpoints are read from, in order; the first is where they are written. */
  private readonly checkpoints: readonly [string, string];

  constructor(storePath: string) {
    this.snapshots = snapshotFoldersOf(storePath);
    this.checkpoints = [checkpointFolderOf(storePath), sharedCheckpointFolderOf(storePath)];
  }

  /**
   * Keeps a value and returns its reference. Bytes (`Uint8Array`, `Buffer`) are kept as they
   * are; anything else as its JSON text, which keeps what JSON keeps: a `Date` comes back as
   * its ISO text, a `Map` as `{}`. Values JSON cannot write (a function, a bigint, a cycle)
   * are refused with a {@link SnapshotError}.
   */
  async write(value: unknown): Promise<SnapshotRef> {
    if (value === undefined) return NO_SNAPSHOT;
    let bytes: Uint8Array;
    let format: "json" | "bytes";
    if (value instanceof Uint8Array) {
      bytes = value;
      format = "bytes";
    } else {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        throw new SnapshotError(`the value cannot be kept as JSON: ${(error as Error).message}`);
      }
      if (text === undefined) {
        throw new SnapshotError(`a ${typeof value} cannot be kept as JSON`);
      }
      bytes = Buffer.from(text, "utf8");
      format = "json";
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    const ref = `${format}:${sha}`;
    const path = this.pathOf(ref);
    try {
      // Kept already: its time says it was used just now, so that pruning, which leaves
      // unused snapshots alone for a while, does not remove it before this run's row names it.
      const now = new Date();
      await utimes(path, now, now);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") return ref;
      await writeFileAtomically(path, bytes);
    }
    return ref;
  }

  /** Whether the snapshot can be read: its file is there (or it is `none`). */
  has(ref: SnapshotRef): boolean {
    return snapshotIn(this.snapshots, ref);
  }

  /** The value a snapshot keeps; a {@link SnapshotError} when it is gone or damaged. */
  async read(ref: SnapshotRef): Promise<unknown> {
    if (ref === NO_SNAPSHOT) return undefined;
    const parsed = parseSnapshotRef(ref);
    if (parsed === undefined) throw new SnapshotError(`"${ref}" is not a snapshot reference`);
    let bytes: Buffer | undefined;
    for (const file of snapshotFilesIn(this.snapshots, ref)) {
      try {
        bytes = await readFile(file);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw new SnapshotError(`the snapshot ${ref} cannot be read: ${(error as Error).message}`);
      }
    }
    if (bytes === undefined) {
      throw new SnapshotError(`the snapshot ${ref} is gone (pruned or deleted)`);
    }
    if (createHash("sha256").update(bytes).digest("hex") !== parsed.sha) {
      throw new SnapshotError(
        `the snapshot ${ref} is damaged: its content does not match its hash`,
      );
    }
    return parsed.format === "bytes" ? bytes : JSON.parse(bytes.toString("utf8"));
  }

  /** The checkpoint of a content address, if one was written and its snapshots are all there. */
  async checkpoint(key: string): Promise<Checkpoint | undefined> {
    for (const folder of this.checkpoints) {
      let checkpoint: Checkpoint;
      try {
        checkpoint = JSON.parse(
          await readFile(this.checkpointPath(folder, key), "utf8"),
        ) as Checkpoint;
      } catch {
        continue;
      }
      if (typeof checkpoint?.snapshot !== "string" || !this.has(checkpoint.snapshot)) continue;
      if (checkpoint.stages?.some((s) => !this.has(s.snapshot))) continue;
      return checkpoint;
    }
    return undefined;
  }

  async putCheckpoint(key: string, checkpoint: Checkpoint): Promise<void> {
    await writeFileAtomically(
      this.checkpointPath(this.checkpoints[0], key),
      `${JSON.stringify(checkpoint)}\n`,
    );
  }

  /** The file a snapshot is written to (not for `none`). */
  private pathOf(ref: SnapshotRef): string {
    const [path] = snapshotFilesIn(this.snapshots, ref);
    if (path === undefined) throw new SnapshotError(`"${ref}" is not a snapshot reference`);
    return path;
  }

  private checkpointPath(folder: string, key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new SnapshotError(`"${key}" is not a checkpoint key`);
    return join(folder, `${key}.json`);
  }
}

/**
 * A content address: the SHA-256 of what decides an output. For a stage, its pipeline and name,
 * the fingerprint of its input, the code ref and the config hash; for a whole run, its pipeline,
 * its stage names, its input's fingerprint, the code ref and the config hash.
 */
export function contentAddress(
  of: "stage" | "run",
  parts: {
    pipeline: string;
    /** The stage's name, or the run's stage names. */
    stage: string | readonly string[];
    inputFingerprint: string;
    codeRef: string;
    configHash: string | null;
  },
): string {
  const { pipeline, stage, inputFingerprint, codeRef, configHash } = parts;
  return createHash("sha256")
    .update(JSON.stringify([of, pipeline, stage, inputFingerprint, codeRef, configHash]))
    .digest("hex");
}
