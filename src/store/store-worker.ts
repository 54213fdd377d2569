/**
 * The thread that writes to stores for the span processors of this process, so that DuckDB's
 * synchronous work (appending, checkpointing, closing) never runs on the pipeline's thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import { transferables } from "./column-batch.js";
import { adoptStoreLockMemory } from "./store-lock.js";
import { type Batch, writeBatch } from "./write-batch.js";

export interface WriteRequest {
  id: number;
  path: string;
  batch: Batch;
  lockWaitMs: number;
}

adoptStoreLockMemory((workerData as { locks: SharedArrayBuffer }).locks);

parentPort?.on("message", (request: WriteRequest) => {
  void writeBatch(request.path, request.batch, request.lockWaitMs).then((outcome) => {
    const { returned } = outcome;
    const moved = returned
      ? transferables(returned.runs, returned.stages, returned.stagesToMerge)
      : [];
    parentPort?.postMessage({ id: request.id, outcome }, moved);
  });
});
