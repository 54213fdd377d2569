import { statSync, writeFileSync } from "node:fs";

/**
 * A process or thread waiting for a store says so in an empty file next to it,
 * `runs.duckdb.wanted`, whose modification time is when it last asked. A writer holding the
 * store across batches lets go soon after someone asks, and holds on while no one does, so
 * that a busy writer alone does not close (and checkpoint) the file every second.
 */
export function wantedFileOf(storePath: string): string {
  return `${storePath}.wanted`;
}

/**
 * Says that this process is waiting for the store. Best effort: where the folder cannot be
 * written, the holder still lets go after its longest hold.
 */
export function askForStore(storePath: string): void {
  try {
    writeFileSync(wantedFileOf(storePath), "");
  } catch {
    // Nothing to do: see above.
  }
}

/** Someone asked for the store at `sinceMs` (epoch milliseconds) or later. */
export function askedSince(storePath: string, sinceMs: number): boolean {
  try {
    return statSync(wantedFileOf(storePath)).mtimeMs >= sinceMs;
  } catch {
    return false;
  }
}
