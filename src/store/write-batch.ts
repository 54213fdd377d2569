import { statSync } from "node:fs";
import type { RunRow, StageRow } from "../record/rows.js";
import { type Columns, columnsOf, emptyColumns, rowsOf } from "./column-batch.js";
import { ingestSpool } from "./ingest-spool.js";
import { openStore } from "./open-store.js";
import { RUN_COLUMNS, STAGE_COLUMNS } from "./row-columns.js";
import { spoolRows } from "./spool.js";
import { classifyDuckDbError, type StoreErrorKind } from "./store-errors.js";
import { type ColumnBatch, writeColumns } from "./write-rows.js";

/** Fresh and merged stage rows together, for when all of them must be merged. */
function allStages(batch: ColumnBatch): Columns {
  return columnsOf(STAGE_COLUMNS, [
    ...rowsOf<StageRow>(STAGE_COLUMNS, batch.stages),
    ...rowsOf<StageRow>(STAGE_COLUMNS, batch.stagesToMerge),
  ]);
}

export type { ColumnBatch as Batch } from "./write-rows.js";

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
  /** Not written but kept in the spool. */
  spooled: boolean;
  spoolError?: string;
  /** Neither written nor spooled: the rows, handed back for the caller to keep. */
  returned?: ColumnBatch;
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
  batch: ColumnBatch,
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
        // One DuckDB thread: the pipeline keeps the other cores.
        threads: 1,
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
        await writeColumns(session, rows);
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
        stages: emptyColumns(STAGE_COLUMNS),
        stagesToMerge: allStages(batch),
      };
    }
    outcome.written = true;
    return outcome;
  } catch (error) {
    const failure = classifyDuckDbError(path, error);
    outcome.error = { kind: failure.kind, message: failure.message };
    try {
      await spoolRows(
        path,
        rowsOf<RunRow>(RUN_COLUMNS, batch.runs),
        rowsOf<StageRow>(STAGE_COLUMNS, allStages(batch)),
      );
      outcome.spooled = true;
    } catch (spoolError) {
      outcome.spoolError = String(spoolError);
      outcome.returned = batch;
    }
    return outcome;
  }
}
