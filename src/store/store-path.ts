import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Default location of the store, relative to the working directory. */
export const DEFAULT_STORE_PATH = ".runtrail/runs.duckdb";

/** The store path: the given one, else `RUNTRAIL_DB`, else `.runtrail/runs.duckdb`. */
export function resolveStorePath(
  path?: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  return resolve(path || env.RUNTRAIL_DB || DEFAULT_STORE_PATH);
}

/** A folder of spooled rows; a private one must belong to this user alone. */
export interface SpoolDir {
  path: string;
  private: boolean;
}

/**
 * Folders where writers keep records the store could not take yet: next to the store, and,
 * for when the store's folder cannot be written either, a private folder of this user in the
 * temp folder.
 */
export function spoolDirsOf(storePath: string): [primary: SpoolDir, fallback: SpoolDir] {
  const key = createHash("sha256").update(storePath).digest("hex").slice(0, 16);
  const user = process.getuid?.() ?? "user";
  return [
    { path: `${storePath}.spool`, private: false },
    { path: join(tmpdir(), `runtrail-spool-${user}`, key), private: true },
  ];
}
