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
 * A person waiting for the store (a command: `tail`, `show`, ...) also touches
 * `runs.duckdb.wanted.read`: the holder lets go at once, and writers waiting for their turn
 * let the command in first. Writers take turns among themselves; a person should not wait
 * for all of them.
 */
export function readerWantedFileOf(storePath: string): string {
  return `${storePath}.wanted.read`;
}

/** How long a command's ask counts: it asks again every tenth of a second while it waits. */
export const READER_ASK_MS = 400;

/**
 * Says that this process is waiting for the store, `reader` when a person waits for it. Best
 * effort: where the folder cannot be written, the holder still lets go after its longest hold.
 */
export function askForStore(storePath: string, reader = false): void {
  try {
    writeFileSync(wantedFileOf(storePath), "");
    if (reader) writeFileSync(readerWantedFileOf(storePath), "");
  } catch {
    // Nothing to do: see above.
  }
}

/** Someone asked for the store at `sinceMs` (epoch milliseconds) or later. */
export function askedSince(storePath: string, sinceMs: number): boolean {
  return touchedSince(wantedFileOf(storePath), sinceMs);
}

/** A command is waiting for the store now: it asked within the last {@link READER_ASK_MS}. */
export function readerWaiting(storePath: string): boolean {
  return touchedSince(readerWantedFileOf(storePath), Date.now() - READER_ASK_MS);
}

function touchedSince(file: string, sinceMs: number): boolean {
  try {
    return statSync(file).mtimeMs >= sinceMs;
  } catch {
    return false;
  }
}
