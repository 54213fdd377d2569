import { MIN_ID_PREFIX, TRACE_HEAD_DIGITS } from "../record/run-id.js";

/** `value` and every object and array in it, made read-only. */
function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) frozen(inner);
  }
  return value;
}

/** Hex digits of an id, without dashes, in lower case. */
function hexOf(id: string): string {
  return id.replaceAll("-", "").toLowerCase();
}

/** Answers about runs are found by the first digits of their prefix, which has at least these. */
const BUCKET_DIGITS = MIN_ID_PREFIX;

/**
 * The runs a write changed: each run whose row or stages it wrote, or which it changed in
 * place or deleted. Told to {@link ReadCache.changed}, it drops the answers about those runs
 * and keeps the others.
 */
export class ChangedRuns {
  /** Run ids, as hex digits. */
  readonly runs = new Set<string>();

  run(runId: string): void {
    this.runs.add(hexOf(runId));
  }

  get size(): number {
    return this.runs.size;
  }
}

/** What a read is, for how long its answer is kept. */
export interface ReadScope<T = unknown> {
  /** `Cache-Control: no-cache`: read anew whatever is kept, and keep this answer. */
  fresh?: boolean;
  /**
   * The answer is about the runs whose run id or trace id begins with these hex digits (at
   * least four, no dashes) and their stages, and about nothing else (not the time): it is kept
   * across writes of other runs (see {@link ReadCache.changed}).
   */
  idPrefix?: string;
  /** Rows (runs and stages) an answer about runs holds, for the memory it is allowed. Default 1. */
  rowsOf?: (value: T) => number;
}

interface Kept {
  at: number;
  value: Promise<unknown>;
  /** Of an answer about runs: the prefix it is about, and its rows once known. */
  idPrefix?: string;
  rows: number;
}

export interface ReadCacheOptions {
  /** Age past which an answer is read again. */
  maxAgeMs: number;
  /** Answers about the whole store kept at most. */
  maxEntries: number;
  /** Age past which an answer about runs is read again. Default: `maxAgeMs`. */
  runMaxAgeMs?: number;
  /** Rows that the answers about runs hold at most, together. Default: `maxEntries`. */
  maxRunRows?: number;
}

/**
 * Answers of reads, kept until a write changes what they say or they are `maxAgeMs` old,
 * whichever comes first. Dashboards, `tail --follow` and status pollers ask the same questions
 * many times a second; between two writes an answer cannot change but for the passing of time
 * (a `since` of 24 h, a stuck run's age), which `maxAgeMs` bounds.
 *
 * Answers about the whole store (a page of runs, statistics) are dropped by every write that
 * changed a run. An answer about the runs of one id prefix is dropped only by a write of one
 * of those runs, or of a run that the prefix would also name; it does not age with time, so
 * `runMaxAgeMs` may be long. A server taking in runs several times a second thus still answers
 * the pollers of other runs from memory.
 *
 * A read asked for again while it is still running is not run twice: both askers get its
 * answer. A read that fails is not kept.
 *
 * Every write tells of its change once it is done, so an answer is never served after the
 * write that made it stale has told its caller it is done. A read that started before the
 * change and ends after it still answers the requests that waited for it (they came before the
 * change was known), but is not kept for later ones.
 */
export class ReadCache {
  private entries = new Map<string, Kept>();
  private runEntries = new Map<string, Kept>();
  /** Keys of the answers about runs, by the first {@link BUCKET_DIGITS} digits of their prefix. */
  private readonly buckets = new Map<string, Set<string>>();
  private runRows = 0;
  private readonly runMaxAgeMs: number;
  private readonly maxRunRows: number;

  constructor(private readonly options: ReadCacheOptions) {
    this.runMaxAgeMs = options.runMaxAgeMs ?? options.maxAgeMs;
    this.maxRunRows = options.maxRunRows ?? options.maxEntries;
  }

  /**
   * The store changed: the answers it may have changed are dropped. Without `runs`, every
   * answer; with them, those about the store as a whole and about any of these runs or a
   * prefix one of them begins with. No runs changed: nothing is dropped.
   */
  changed(runs?: ChangedRuns): void {
    if (runs === undefined) {
      this.entries.clear();
      this.runEntries.clear();
      this.buckets.clear();
      this.runRows = 0;
      return;
    }
    if (runs.size === 0) return;
    this.entries.clear();
    // The prefixes that may name a run: those of its id, and those of its trace id. A run's id
    // begins with its trace id's first 16 digits (see `runIdOf`), and only those of a longer
    // trace-id prefix are looked up among run ids (see `findRuns`).
    for (const id of runs.runs) {
      const bucket = this.buckets.get(id.slice(0, BUCKET_DIGITS));
      if (bucket === undefined) continue;
      for (const key of [...bucket]) {
        const prefix = this.runEntries.get(key)?.idPrefix;
        if (prefix !== undefined && id.startsWith(prefix.slice(0, TRACE_HEAD_DIGITS))) {
          this.drop(key, true);
        }
      }
    }
  }

  /** Answers kept now (for tests and metrics). */
  get size(): number {
    return this.entries.size + this.runEntries.size;
  }

  /** The kept answer for `key`, or `read`'s, kept from now (see {@link ReadScope}). */
  get<T>(key: string, read: () => Promise<T>, scope: ReadScope<T> = {}): Promise<T> {
    const now = performance.now();
    const aboutRuns = scope.idPrefix !== undefined;
    const entries = aboutRuns ? this.runEntries : this.entries;
    const kept = entries.get(key);
    const maxAge = aboutRuns ? this.runMaxAgeMs : this.options.maxAgeMs;
    if (!scope.fresh && kept !== undefined && now - kept.at <= maxAge) {
      return kept.value as Promise<T>;
    }
    let value: Promise<T>;
    try {
      // Frozen, for every asker gets the same answer: a change by one would show in the next.
      value = read().then(frozen);
    } catch (error) {
      return Promise.reject(error);
    }
    const entry: Kept = { at: now, value, rows: 1 };
    // Oldest first: a full cache lets go of the entry made longest ago.
    if (kept !== undefined) this.drop(key, aboutRuns);
    if (aboutRuns) {
      entry.idPrefix = scope.idPrefix;
      this.keepRun(key, entry);
      const rowsOf = scope.rowsOf;
      if (rowsOf !== undefined) {
        value.then(
          (answer) => {
            if (this.runEntries.get(key) !== entry) return;
            const rows = Math.max(1, rowsOf(answer));
            this.runRows += rows - entry.rows;
            entry.rows = rows;
            this.trimRuns();
          },
          () => undefined,
        );
      }
    } else {
      this.entries.set(key, entry);
      if (this.entries.size > this.options.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
    }
    value.catch(() => {
      if (entries.get(key) === entry) this.drop(key, aboutRuns);
    });
    return value;
  }

  private keepRun(key: string, entry: Kept): void {
    this.runEntries.set(key, entry);
    this.runRows += entry.rows;
    const head = (entry.idPrefix as string).slice(0, BUCKET_DIGITS);
    let bucket = this.buckets.get(head);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(head, bucket);
    }
    bucket.add(key);
    this.trimRuns();
  }

  /** Lets go of the oldest answers about runs while they hold more rows than allowed. */
  private trimRuns(): void {
    while (this.runRows > this.maxRunRows) {
      const oldest = this.runEntries.keys().next().value;
      if (oldest === undefined) return;
      this.drop(oldest, true);
    }
  }

  private drop(key: string, aboutRuns: boolean): void {
    if (!aboutRuns) {
      this.entries.delete(key);
      return;
    }
    const entry = this.runEntries.get(key);
    if (entry === undefined) return;
    this.runEntries.delete(key);
    this.runRows -= entry.rows;
    const head = (entry.idPrefix as string).slice(0, BUCKET_DIGITS);
    const bucket = this.buckets.get(head);
    bucket?.delete(key);
    if (bucket?.size === 0) this.buckets.delete(head);
  }
}
