/**
 * Values by span id: the index of the states the recorder follows, looked up on every span
 * start and end.
 *
 * An open-addressing table in two arrays, rather than a `Map`, because of how it is used:
 * runs and stages come and go thousands of times a second, so the index fills and empties
 * all the time. A `Map` replaces its table on nearly every such turn, and V8 links each
 * replaced table to the next; once one of them has been promoted to the old generation, the
 * chain keeps every later table, and the states in them, alive through young-generation
 * collections, and they are promoted in turn (in the hot-path benchmark, fifteen times the
 * bytes promoted per scavenge). A dictionary-mode object avoids that but pays for interning
 * every key. Here the arrays live as long as the index and are reused: a deleted slot is
 * marked, and the marks are swept in place.
 */
export class SpanIndex<T> {
  /** Span ids; `undefined` is a free slot, `null` a deleted one. */
  private keys: (string | null | undefined)[];
  private values: (T | undefined)[];
  private mask: number;
  /** Entries held. */
  private count = 0;
  /** Slots not free: entries and deleted marks. */
  private used = 0;

  constructor(capacity = 64) {
    const size = powerOfTwoAtLeast(capacity);
    this.keys = new Array(size).fill(undefined);
    this.values = new Array(size).fill(undefined);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  get(spanId: string): T | undefined {
    const keys = this.keys;
    const mask = this.mask;
    for (let i = hashOf(spanId) & mask; ; i = (i + 1) & mask) {
      const key = keys[i];
      if (key === undefined) return undefined;
      if (key === spanId) return this.values[i];
    }
  }

  set(spanId: string, value: T): void {
    const keys = this.keys;
    const mask = this.mask;
    let deleted = -1;
    let i = hashOf(spanId) & mask;
    for (; ; i = (i + 1) & mask) {
      const key = keys[i];
      if (key === undefined) break;
      if (key === spanId) {
        this.values[i] = value;
        return;
      }
      if (key === null && deleted < 0) deleted = i;
    }
    if (deleted >= 0) i = deleted;
    else this.used += 1;
    keys[i] = spanId;
    this.values[i] = value;
    this.count += 1;
    // At most half the slots in use keeps probes short; the other half is free.
    if (this.used * 2 > keys.length) this.resize();
  }

  /** Deletes the entry of `spanId`; if `value` is given, only when that is its value. */
  delete(spanId: string, value?: T): void {
    const keys = this.keys;
    const mask = this.mask;
    for (let i = hashOf(spanId) & mask; ; i = (i + 1) & mask) {
      const key = keys[i];
      if (key === undefined) return;
      if (key === spanId) {
        if (value !== undefined && this.values[i] !== value) return;
        keys[i] = null;
        this.values[i] = undefined;
        this.count -= 1;
        return;
      }
    }
  }

  /** Sweeps deleted marks, in the same arrays unless the entries need more room or far less. */
  private resize(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const liveKeys: string[] = [];
    const liveValues: T[] = [];
    for (let i = 0; i < oldKeys.length; i++) {
      const key = oldKeys[i];
      if (typeof key === "string") {
        liveKeys.push(key);
        liveValues.push(oldValues[i] as T);
      }
    }
    // Room for four times the entries, so that sweeps are rare next to inserts.
    const size = powerOfTwoAtLeast(Math.max(64, this.count * 4));
    if (size === oldKeys.length) {
      oldKeys.fill(undefined);
      oldValues.fill(undefined);
    } else {
      this.keys = new Array(size).fill(undefined);
      this.values = new Array(size).fill(undefined);
      this.mask = size - 1;
    }
    this.count = 0;
    this.used = 0;
    for (let i = 0; i < liveKeys.length; i++) {
      this.set(liveKeys[i] as string, liveValues[i] as T);
    }
  }
}

function powerOfTwoAtLeast(n: number): number {
  let size = 16;
  while (size < n) size *= 2;
  return size;
}

/**
 * FNV-1a over the last eight characters of an id. Span ids are random hex, so eight of their
 * characters spread them well, and ids counted up from zero differ in their last characters.
 */
function hashOf(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = Math.max(0, id.length - 8); i < id.length; i++) {
    hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  }
  return hash >>> 0;
}
