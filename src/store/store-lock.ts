import { threadId } from "node:worker_threads";
import { askForStore } from "./store-wanted.js";

/**
 * One store may be open once per process: DuckDB takes an OS file lock per process, so two
 * threads of one process would both get in and overwrite each other. Every thread that opens a
 * store takes this lock first: a cell per store path (by hash) in memory shared by the threads.
 */
const CELLS = 64;
let cells: Int32Array | undefined;

function table(): Int32Array {
  cells ??= new Int32Array(new SharedArrayBuffer(CELLS * Int32Array.BYTES_PER_ELEMENT));
  return cells;
}

/** The shared memory to hand to a worker thread, so it takes the same locks. */
export function storeLockMemory(): SharedArrayBuffer {
  return table().buffer as SharedArrayBuffer;
}

/** Called in a worker thread with the memory of the thread that started it. */
export function adoptStoreLockMemory(memory: SharedArrayBuffer): void {
  cells = new Int32Array(memory);
}

function cellOf(path: string): number {
  let hash = 0;
  for (let i = 0; i < path.length; i++) hash = (hash * 31 + path.charCodeAt(i)) | 0;
  return Math.abs(hash) % CELLS;
}

/** A cell holds 0 when free, else the id of the thread holding it plus one. */
const holder = threadId + 1;

/** Frees the cells a thread held when it ended, so that no other thread waits for it forever. */
export function releaseStoresOf(endedThreadId: number): void {
  const memory = table();
  for (let cell = 0; cell < CELLS; cell++) {
    if (Atomics.compareExchange(memory, cell, endedThreadId + 1, 0) === endedThreadId + 1) {
      Atomics.notify(memory, cell);
    }
  }
}

/** Waits, without blocking the thread, until this thread holds the store's lock. */
export async function lockStore(path: string): Promise<() => void> {
  const memory = table();
  const cell = cellOf(path);
  for (;;) {
    const seen = Atomics.compareExchange(memory, cell, 0, holder);
    if (seen === 0) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        Atomics.store(memory, cell, 0);
        Atomics.notify(memory, cell);
      };
    }
    // A writer of this store in another thread lets go sooner when asked.
    askForStore(path);
    const wait = Atomics.waitAsync(memory, cell, seen, 50);
    if (wait.async) {
      // Waiting on shared memory does not keep Node running; a timer does, so a process that
      // waits for its own store thread to let go of the store does not exit meanwhile.
      const keepAlive = setTimeout(() => undefined, 1000);
      await wait.value;
      clearTimeout(keepAlive);
    }
  }
}
