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

/**
 * Folders where writers keep records the store could not take yet: next to the store, and in
 * the temp folder for when the store's folder cannot be written either.
 */
export function spoolDirsOf(storePath: string): [primary: string, fallback: string] {
  const key = createHash("sha256").update(storePath).digest("hex").slice(0, 16);
  return [`${storePath}.spool`, join(tmpdir(), "runtrail-spool", key)];
}
