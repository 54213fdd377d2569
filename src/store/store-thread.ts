import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { releaseStoresOf, storeLockMemory } from "./store-lock.js";
import type { StoreRequest } from "./store-worker.js";
import type { BatchOutcome } from "./write-batch.js";
import type { ColumnBatch } from "./write-rows.js";

interface Pending {
  resolve: (outcome: BatchOutcome | undefined) => void;
  reject: (error: Error) => void;
}

/**
 * The one store-writing thread of this process, started when first needed. It keeps Node
 * alive only while it has work, and is started again if it ever dies.
 */
class StoreThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /**
   * Makes a batch durable in the store at `path` (see `BatchWriter`). The batch is copied to the
   * thread, not moved: should the thread die with it, the caller still has the rows.
   */
  async write(path: string, batch: ColumnBatch, lockWaitMs: number): Promise<BatchOutcome> {
    const outcome = await this.request({ id: this.nextId++, path, batch, lockWaitMs }, []);
    if (outcome === undefined)
      throw new Error("the store thread answered a write without an outcome");
    return outcome;
  }

  /** Checkpoints and closes the store at `path` if the thread holds it open. */
  async close(path: string): Promise<void> {
    if (this.worker === undefined) return;
    await this.request({ id: this.nextId++, path, lockWaitMs: 0 }, []);
  }

  private request(request: StoreRequest, moved: ArrayBuffer[]): Promise<BatchOutcome | undefined> {
    const worker = this.start();
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage(request, moved);
    });
  }

  /** Whether the thread is running. */
  get started(): boolean {
    return this.worker !== undefined;
  }

  /**
   * The thread, started now if it is not running: a writer starts it when it first has rows,
   * so that loading DuckDB in it (about 0.3 s) overlaps the wait for the first write.
   */
  start(): Worker {
    if (this.worker) return this.worker;
    const workerData = { locks: storeLockMemory() };
    // Run from the TypeScript sources (tests, tsx), the worker is TypeScript: load it with tsx.
    const source = import.meta.url.endsWith(".ts");
    const worker = source
      ? new Worker(
          `require("tsx/cjs/api").register(); require(${JSON.stringify(
            fileURLToPath(new URL("./store-worker.ts", import.meta.url)),
          )});`,
          { eval: true, workerData, execArgv: [], name: "runtrail-store" },
        )
      : new Worker(new URL("./store-worker.js", import.meta.url), {
          workerData,
          name: "runtrail-store",
        });
    worker.unref();
    worker.on("message", (message: { id: number; outcome?: BatchOutcome; failure?: string }) => {
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (this.pending.size === 0) worker.unref();
      if (message.failure !== undefined) waiting?.reject(new Error(message.failure));
      else waiting?.resolve(message.outcome);
    });
    const fail = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // A store it held open would otherwise stay locked for every other thread.
      releaseStoresOf(worker.threadId);
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) =>
      fail(new Error(`the runtrail store thread stopped (exit code ${code})`)),
    );
    this.worker = worker;
    return worker;
  }
}

export const storeThread = new StoreThread();
