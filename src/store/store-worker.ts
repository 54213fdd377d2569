/**
 * The thread that writes to stores for the span processors of this process, so that DuckDB's
 * synchronous work (appending, checkpointing, closing) never runs on the pipeline's thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { transferables } from "./column-batch.js";
import { adoptStoreLockMemory } from "./store-lock.js";
import { BatchWriter } from "./write-batch.js";
import type { ColumnBatch } from "./write-rows.js";

/** Write a batch, or (without one) close the store so that the file stands alone. */
export interface StoreRequest {
  id: number;
  path: string;
  batch?: ColumnBatch;
  lockWaitMs: number;
}

adoptStoreLockMemory((workerData as { locks: SharedArrayBuffer }).locks);

/** One writer per store, each keeping its store open between batches that follow closely. */
const writers = new Map<string, BatchWriter>();

function writerFor(request: StoreRequest): BatchWriter {
  let writer = writers.get(request.path);
  if (writer === undefined) {
    writer = new BatchWriter(request.path, { lockWaitMs: request.lockWaitMs });
    writers.set(request.path, writer);
  }
  return writer;
}

// Requests are written one after the other, in the order they came.
let queue: Promise<void> = Promise.resolve();

parentPort?.on("message", (request: StoreRequest) => {
  queue = queue.then(() => handle(request));
});

async function handle(request: StoreRequest): Promise<void> {
  const writer = writerFor(request);
  if (request.batch === undefined) {
    await writer.checkpointAndClose();
    parentPort?.postMessage({ id: request.id });
    return;
  }
  const outcome = await writer.write(request.batch);
  const { returned } = outcome;
  const moved = returned
    ? transferables(returned.runs, returned.stages, returned.stagesToMerge)
    : [];
  parentPort?.postMessage({ id: request.id, outcome }, moved);
}
