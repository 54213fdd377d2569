import { latestRunRows } from "../record/rows.js";
import { quarantineSpooled, readSpool, removeSpooled } from "./spool.js";
import { classifyDuckDbError } from "./store-errors.js";
import type { StoreSession } from "./store-session.js";
import { writeRows } from "./write-rows.js";

export interface SpoolIngest {
  rows: number;
  /** Segments the store refused, renamed `.rejected`. */
  rejectedFiles: number;
}

/**
 * Writes the rows other writers spooled while the store was unavailable, a segment per
 * transaction, and deletes each segment once its rows are in. A segment whose rows the store
 * refuses is kept aside as `.rejected`, so it cannot block later writes; any other failure
 * stops here and leaves the remaining segments for the next writer.
 */
export async function ingestSpool(session: StoreSession): Promise<SpoolIngest> {
  const result: SpoolIngest = { rows: 0, rejectedFiles: 0 };
  for (const segment of await readSpool(session.path)) {
    try {
      await writeRows(session, {
        runs: latestRunRows(segment.runs),
        stages: [],
        stagesToMerge: segment.stages,
      });
    } catch (error) {
      if (classifyDuckDbError(session.path, error).kind !== "invalid") throw error;
      await quarantineSpooled(segment.file);
      result.rejectedFiles += 1;
      continue;
    }
    await removeSpooled(segment.file);
    result.rows += segment.runs.length + segment.stages.length;
  }
  return result;
}
