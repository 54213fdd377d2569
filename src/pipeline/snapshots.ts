import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  checkpointFolderOf,
  NO_SNAPSHOT,
  parseSnapshotRef,
  snapshotExists,
  snapshotFileOf,
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
 * Snapshots and checkpoints in the store's folder. Snapshots are addressed by the SHA-256 of
 * their bytes: writing one that exists costs a hash and a lookup.
 */
export class SnapshotStore {
  private readonly checkpoints: string;

  constructor(private readonly storePath: string) {
    this.checkpoints = checkpointFolderOf(storePath);
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
    if (!existsSync(path)) await writeFileAtomically(path, bytes);
    return ref;
  }

  /** Whether the snapshot can be read: its file is there (or it is `none`). */
  has(ref: SnapshotRef): boolean {
    return snapshotExists(this.storePath, ref);
  }

  /** The value a snapshot keeps; a {@link SnapshotError} when it is gone or damaged. */
  async read(ref: SnapshotRef): Promise<unknown> {
    if (ref === NO_SNAPSHOT) return undefined;
    const parsed = parseSnapshotRef(ref);
    if (parsed === undefined) throw new SnapshotError(`"${ref}" is not a snapshot reference`);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.pathOf(ref));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SnapshotError(
        code === "ENOENT"
          ? `the snapshot ${ref} is gone (pruned or deleted)`
          : `the snapshot ${ref} cannot be read: ${(error as Error).message}`,
      );
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
    let checkpoint: Checkpoint;
    try {
      checkpoint = JSON.parse(await readFile(this.checkpointPath(key), "utf8")) as Checkpoint;
    } catch {
      return undefined;
    }
    if (typeof checkpoint?.snapshot !== "string" || !this.has(checkpoint.snapshot))
      return undefined;
    if (checkpoint.stages?.some((s) => !this.has(s.snapshot))) return undefined;
    return checkpoint;
  }

  async putCheckpoint(key: string, checkpoint: Checkpoint): Promise<void> {
    await writeFileAtomically(this.checkpointPath(key), `${JSON.stringify(checkpoint)}\n`);
  }

  /** The file of a snapshot reference (not `none`). */
  private pathOf(ref: SnapshotRef): string {
    const path = snapshotFileOf(this.storePath, ref);
    if (path === undefined) throw new SnapshotError(`"${ref}" is not a snapshot reference`);
    return path;
  }

  private checkpointPath(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new SnapshotError(`"${key}" is not a checkpoint key`);
    return join(this.checkpoints, `${key}.json`);
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
