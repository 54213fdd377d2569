import type { StoreSession } from "../store/store-session.js";

/** Runs noted since the last merge, at most; looked through one by one until merged. */
const PENDING_MAX = 4096;

/** The first 8 hex digits of a run id (dashes aside), as a number. */
function head(runId: string): number {
  return Number.parseInt(runId.slice(0, 8), 16);
}

/**
 * Where a run is, by the first 8 hex digits of its id: its start time, which DuckDB's zone maps
 * turn into the one row group that holds it. Run ids are random, so no zone map narrows a scan
 * by id: without this, every lookup of a prefix reads the run id column of the whole table
 * (6.6 ms for a million runs). With it, a lookup reads the rows of one start time.
 *
 * 12 bytes a run: the heads sorted, with the start times beside them, and the runs noted since
 * the last merge in a short list. Built from the store once; after that the holder notes the
 * key of every run row it writes, before writing it. An entry may outlive its run (deleted,
 * or its start time changed): a lookup checks every candidate in the store, so that costs a
 * wasted look, not a wrong answer. A run with no entry would be missed, so every write of run
 * rows must note them (see `StoreSession.watcher`).
 */
export class RunKeyIndex {
  private heads: Uint32Array;
  private starts: Float64Array;
  private pendingHeads: number[] = [];
  private pendingStarts: number[] = [];

  private constructor(heads: Uint32Array, starts: Float64Array) {
    this.heads = heads;
    this.starts = starts;
  }

  /** The index of every run in the store. */
  static async build(session: StoreSession): Promise<RunKeyIndex> {
    const reader = await session.connection.runAndReadAll(
      `SELECT ('0x' || left(run_id::VARCHAR, 8))::UINTEGER AS head,
         epoch_us(started_at)::DOUBLE AS started_at
       FROM runs ORDER BY head, started_at`,
    );
    const [heads = [], starts = []] = reader.getColumns() as number[][];
    return new RunKeyIndex(Uint32Array.from(heads), Float64Array.from(starts));
  }

  /** Runs indexed, a run written twice counted twice until merged. */
  get size(): number {
    return this.heads.length + this.pendingHeads.length;
  }

  /** Notes a run about to be written: its id and start (epoch microseconds). */
  note(runId: string, startedAt: number): void {
    const h = head(runId);
    if (!Number.isFinite(h) || !Number.isFinite(startedAt)) return;
    this.pendingHeads.push(h);
    this.pendingStarts.push(startedAt);
    if (this.pendingHeads.length >= PENDING_MAX) this.merge();
  }

  /**
   * The start times of the runs whose id begins with these hex digits (at least 8, no dashes),
   * without repeats; undefined for fewer digits, which the index cannot narrow well.
   */
  startsOf(hex: string): number[] | undefined {
    if (hex.length < 8) return undefined;
    const h = head(hex);
    const found = new Set<number>();
    for (let i = this.lowerBound(h); i < this.heads.length && this.heads[i] === h; i++) {
      found.add(this.starts[i] as number);
    }
    this.pendingHeads.forEach((p, i) => {
      if (p === h) found.add(this.pendingStarts[i] as number);
    });
    return [...found];
  }

  /** The first position whose head is `h` or more. */
  private lowerBound(h: number): number {
    let low = 0;
    let high = this.heads.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.heads[mid] as number) < h) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Moves the noted runs into the sorted arrays, dropping entries noted twice. */
  private merge(): void {
    const order = this.pendingHeads.map((_, i) => i);
    const ph = this.pendingHeads;
    const ps = this.pendingStarts;
    order.sort(
      (a, b) => (ph[a] as number) - (ph[b] as number) || (ps[a] as number) - (ps[b] as number),
    );
    const heads = new Uint32Array(this.heads.length + order.length);
    const starts = new Float64Array(heads.length);
    let n = 0;
    const put = (h: number, s: number) => {
      if (n > 0 && heads[n - 1] === h && starts[n - 1] === s) return;
      heads[n] = h;
      starts[n] = s;
      n += 1;
    };
    let i = 0;
    let j = 0;
    while (i < this.heads.length || j < order.length) {
      const p = order[j];
      const takeOld =
        p === undefined ||
        (i < this.heads.length &&
          ((this.heads[i] as number) < (ph[p] as number) ||
            (this.heads[i] === ph[p] && (this.starts[i] as number) <= (ps[p] as number))));
      if (takeOld) {
        put(this.heads[i] as number, this.starts[i] as number);
        i += 1;
      } else {
        put(ph[p] as number, ps[p] as number);
        j += 1;
      }
    }
    this.heads = heads.slice(0, n);
    this.starts = starts.slice(0, n);
    this.pendingHeads = [];
    this.pendingStarts = [];
  }
}
