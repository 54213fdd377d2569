import { setTimeout as sleep } from "node:timers/promises";
import { threadId } from "node:worker_threads";
import { askForStore } from "./store-wanted.js";

/**
 * One store may be open once per process: DuckDB takes an OS file lock per process, so two
 * threads of one process would both get in and overwrite each other. Every thread that opens a
 * store takes this lock first, in memory shared by the threads: a table of slots, each holding
 * the key of a store path (a 32-bit hash, never 0) while a thread has it open, and that thread.
 *
 * A slot per path, not a cell per hash bucket: with 64 buckets, two stores held at once by one
 * process shared a bucket one time in 64, and the second waited for the first to close; a
 * server holding its store kept the other waiting for good. Two paths with the same key (about
 * one pair in four billion) would still wait for each other.
 */
const SLOTS = 256;

interface Tables {
  memory: SharedArrayBuffer;
  keys: Int32Array;
  holders: Int32Array;
}

let shared: Tables | undefined;

function tablesIn(memory: SharedArrayBuffer): Tables {
  return {
    memory,
    keys: new Int32Array(memory, 0, SLOTS),
    holders: new Int32Array(memory, SLOTS * Int32Array.BYTES_PER_ELEMENT, SLOTS),
  };
}

function tables(): Tables {
  shared ??= tablesIn(new SharedArrayBuffer(2 * SLOTS * Int32Array.BYTES_PER_ELEMENT));
  return shared;
}

/** The shared memory to hand to a worker thread, so it takes the same locks. */
export function storeLockMemory(): SharedArrayBuffer {
  return tables().memory;
}

/** Called in a worker thread with the memory of the thread that started it. */
export function adoptStoreLockMemory(memory: SharedArrayBuffer): void {
  shared = tablesIn(memory);
}

/** A path's key: its FNV-1a hash, never 0 (a free slot). */
function keyOf(path: string): number {
  let hash = 0x811c9dc5 | 0;
  for (let i = 0; i < path.length; i++) {
    hash ^= path.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash === 0 ? 1 : hash;
}

/** A holder is the id of the thread holding the slot plus one. */
const holder = threadId + 1;

/** Empties a slot and wakes whoever waits for it. */
function free(t: Tables, slot: number): void {
  Atomics.store(t.holders, slot, 0);
  Atomics.store(t.keys, slot, 0);
  Atomics.notify(t.keys, slot);
}

/** Frees the slots a thread held when it ended, so that no other thread waits for it forever. */
export function releaseStoresOf(endedThreadId: number): void {
  const t = tables();
  for (let slot = 0; slot < SLOTS; slot++) {
    if (Atomics.load(t.holders, slot) === endedThreadId + 1) free(t, slot);
  }
}

/** The slot holding `key`, other than `except`, or -1. */
function slotOf(t: Tables, key: number, except = -1): number {
  for (let slot = 0; slot < SLOTS; slot++) {
    if (slot !== except && Atomics.load(t.keys, slot) === key) return slot;
  }
  return -1;
}

/**
 * Takes a free slot for `key`, or answers why not: the slot of the thread that holds it, or -1
 * when every slot is taken.
 */
function claim(t: Tables, key: number): { mine: boolean; slot: number } {
  const held = slotOf(t, key);
  if (held >= 0) return { mine: false, slot: held };
  for (let slot = 0; slot < SLOTS; slot++) {
    if (Atomics.compareExchange(t.keys, slot, 0, key) !== 0) continue;
    // Another thread may have claimed another slot for the same key at the same time. Whoever
    // sees the other's claim lets go of its own and tries again; at least one of the two sees
    // it, so at most one keeps its slot.
    const rival = slotOf(t, key, slot);
    if (rival >= 0) {
      free(t, slot);
      return { mine: false, slot: rival };
    }
    Atomics.store(t.holders, slot, holder);
    return { mine: true, slot };
  }
  return { mine: false, slot: -1 };
}

/** Waits, without blocking the thread, until this thread holds the store's lock. */
export async function lockStore(path: string): Promise<() => void> {
  const t = tables();
  const key = keyOf(path);
  for (;;) {
    const { mine, slot } = claim(t, key);
    if (mine) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        free(t, slot);
      };
    }
    if (slot < 0) {
      // Every slot is taken: one frees up when a store closes.
      await sleep(50);
      continue;
    }
    // A writer of this store in another thread lets go sooner when asked.
    askForStore(path);
    const wait = Atomics.waitAsync(t.keys, slot, key, 50);
    if (wait.async) {
      // Waiting on shared memory does not keep Node running; a timer does, so a process that
      // waits for its own store thread to let go of the store does not exit meanwhile.
      const keepAlive = setTimeout(() => undefined, 1000);
      await wait.value;
      clearTimeout(keepAlive);
    }
  }
}
