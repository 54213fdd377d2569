import { statSync } from "node:fs";
import type { RunRow, StageRow } from "../record/rows.js";
import { ingestSpool } from "./ingest-spool.js";
import { openStore } from "./open-store.js";
import { spoolRows } from "./spool.js";
import { classifyDuckDbError, type StoreErrorKind } from "./store-errors.js";
import { writeRows } from "./write-rows.js";

/** A batch of a writer's rows for one store. */
export interface Batch {
  runs: RunRow[];
  stages: StageRow[];
  stagesToMerge: StageRow[];
}

export interface BatchOutcome {
  /** The rows are in the store. */
  written: boolean;
  /** How long the store was held. */
  sessionMs: number;
  /** Rows other writers had spooled, written along. */
  spoolRowsIngested: number;
  spoolRejectedFiles: number;
  /** A damaged store this write moved aside. */
  movedAside?: { to: string; reason: string };
  /** Why the rows are not in the store. */
  error?: { kind: StoreErrorKind; message: string };
  /** Not written but kept in the spool; when false too, the caller must keep the rows. */
  spooled: boolean;
  spoolError?: string;
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * Makes a batch durable: opens the store (waiting up to `lockWaitMs` for other processes),
 * writes in what others spooled, then the batch, in transactions, and closes it. If the file
 * was replaced or deleted meanwhile, writes the rows again to the file now at the path. When
 * the store cannot be used, the rows go to the spool instead.
 */
export async function writeBatch(
  path: string,
  batch: Batch,
  lockWaitMs: number,
): Promise<BatchOutcome> {
  const outcome: BatchOutcome = {
    written: false,
    sessionMs: 0,
    spoolRowsIngested: 0,
    spoolRejectedFiles: 0,
    spooled: false,
  };
  try {
    let rows = batch;
    for (let attempt = 0; attempt < 2; attempt++) {
      const session = await openStore(path, {
        lockTimeoutMs: lockWaitMs,
        onMovedAside: (_from, to, reason) => {
          outcome.movedAside = { to, reason };
        },
      });
      const started = performance.now();
      const inode = inodeOf(path);
      try {
        const spool = await ingestSpool(session);
        outcome.spoolRowsIngested += spool.rows;
        outcome.spoolRejectedFiles += spool.rejectedFiles;
        await writeRows(session, rows);
        // Closing checkpoints; done here, on DuckDB's threads, it leaves little for close().
        await session.run("CHECKPOINT");
      } finally {
        session.close();
        outcome.sessionMs += performance.now() - started;
      }
      if (inode === inodeOf(path)) {
        outcome.written = true;
        return outcome;
      }
      // The file was swapped or deleted while we wrote: the stage rows may exist in the new one.
      rows = {
        runs: batch.runs,
        stages: [],
        stagesToMerge: [...batch.stages, ...batch.stagesToMerge],
      };
    }
    outcome.written = true;
    return outcome;
  } catch (error) {
    const failure = classifyDuckDbError(path, error);
    outcome.error = { kind: failure.kind, message: failure.message };
    try {
      await spoolRows(path, batch.runs, [...batch.stages, ...batch.stagesToMerge]);
      outcome.spooled = true;
    } catch (spoolError) {
      outcome.spoolError = String(spoolError);
    }
    return outcome;
  }
}
