import { latestRunRows } from "../record/rows.js";
import { quarantineSpooled, readSpool, removeSpooled } from "./spool.js";
import type { StoreSession } from "./store-session.js";
import { writeRows } from "./write-rows.js";

export interface SpoolIngest {
  rows: number;
  /** Segments the store refused, renamed `.rejected`. */
  rejectedFiles: number;
}

/**
 * Writes the rows other writers spooled while the store was unavailable, then deletes their
 * segments. Segments the store refuses are kept aside so they cannot block later writes.
 */
export async function ingestSpool(session: StoreSession): Promise<SpoolIngest> {
  const spooled = await readSpool(session.path);
  if (spooled.files.length === 0) return { rows: 0, rejectedFiles: 0 };
  try {
    await writeRows(session, {
      runs: latestRunRows(spooled.runs),
      stages: [],
      stagesToMerge: spooled.stages,
    });
  } catch {
    await quarantineSpooled(spooled.files);
    return { rows: 0, rejectedFiles: spooled.files.length };
  }
  await removeSpooled(spooled.files);
  return { rows: spooled.runs.length + spooled.stages.length, rejectedFiles: 0 };
}
