import { diag } from "@opentelemetry/api";
import type { RecordSink } from "../record/recorder.js";
import { latestRunRows, type RunRow, type StageRow } from "../record/rows.js";
import type { RunState } from "../record/run-state.js";
import { ColumnBuffer, recycleColumns, rowsOf } from "./column-batch.js";
import { RUN_COLUMNS, STAGE_COLUMNS } from "./row-columns.js";
import { spoolRows } from "./spool.js";
import { storeThread } from "./store-thread.js";
import type { BatchOutcome } from "./write-batch.js";
import { type ColumnBatch, columnBatchOf, mergeAll, partsOf } from "./write-rows.js";

const NOT_WRITTEN: BatchOutcome = {
  written: false,
  sessionMs: 0,
  spoolRowsIngested: 0,
  spoolRejectedFiles: 0,
  spooled: false,
};

export interface StoreWriterOptions {
  /** Absolute path of the DuckDB file. */
  path: string;
  /** How often pending rows are written. */
  flushIntervalMs: number;
  /** How often the rows of open runs are rewritten to show their owner is alive. */
  heartbeatIntervalMs: number;
  /** Pending stage rows (or run rows) that trigger a write before the interval; a write takes at most this many. */
  maxQueuedRows: number;
  /** How long one write waits for another process to let go of the file. */
  lockWaitMs: number;
  /** Called before each write, to hand over what is still to be recorded. */
  beforeWrite?: () => void;
}

/** What the writer has done, for tests, benchmarks and metrics. */
export interface StoreWriterStats {
  flushes: number;
  failedFlushes: number;
  runRowsWritten: number;
  stageRowsWritten: number;
  spooledSegments: number;
  spoolRowsIngested: number;
  droppedRows: number;
}

/**
 * Takes rows from the recorder and has them made durable, a batch at a time, by the store
 * thread: nothing here blocks the pipeline. When the store cannot be used the rows wait in the
 * spool (or, if that cannot be written either, in bounded memory) and it says so once.
 */
export class StoreWriter implements RecordSink {
  /**
   * Runs whose row is due, each at its `run.dirtyAt`; a run that settles in the meantime has
   * its row written into columns at once and leaves an empty slot, so nothing keeps it alive.
   */
  private dirty: (RunState | undefined)[] = [];
  /**
   * Runs open in this process, each at its `run.openAt`. An array with swap-removal rather than
   * a `Set`: runs come and go too often for a hash table (see `SpanIndex`).
   */
  private readonly open: RunState[] = [];
  /** Rows of runs: those that ended go into columns at once, the others at the next write. */
  private readonly runs = new ColumnBuffer(RUN_COLUMNS);
  private readonly newRuns = new ColumnBuffer(RUN_COLUMNS);
  /** Stage rows go into columns as they end: no row objects wait for the next flush. */
  private readonly stages = new ColumnBuffer(STAGE_COLUMNS);
  private readonly stagesToMerge = new ColumnBuffer(STAGE_COLUMNS);
  /** Rows that neither the store nor the spool took, as one batch: tried again first. */
  private held: ColumnBatch | undefined;
  /**
   * Batches of `maxQueuedRows` stage rows (or run rows) set apart while a write was under way,
   * each written in a transaction of its own, in order: a pipeline that outruns the store makes
   * more writes, not bigger ones, so a write's memory stays bounded and the store is let go
   * between writes for a reader that asked for it.
   */
  private sealed: ColumnBatch[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private failing = false;
  /** How long the last write held the store; the next waits in proportion, to share it. */
  private lastSessionMs = 0;
  private readonly warned = new Set<string>();
  private closed = false;
  private exitFlushes = 0;
  readonly stats: StoreWriterStats = {
    flushes: 0,
    failedFlushes: 0,
    runRowsWritten: 0,
    stageRowsWritten: 0,
    spooledSegments: 0,
    spoolRowsIngested: 0,
    droppedRows: 0,
  };

  constructor(private readonly options: StoreWriterOptions) {
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  runChanged(run: RunState): void {
    if (run.settled) {
      // Final: its row goes into columns now, and nothing here keeps the run alive.
      this.appendRow(run, Date.now() * 1000);
      if (this.runs.count + this.newRuns.count >= this.options.maxQueuedRows) this.full();
    } else if (run.dirtyAt < 0) {
      run.dirtyAt = this.dirty.length;
      this.dirty.push(run);
    }
    if (run.ended === run.openAt >= 0) {
      if (run.ended) this.unlist(run);
      else {
        run.openAt = this.open.length;
        this.open.push(run);
      }
    }
    this.schedule();
  }

  private unlist(run: RunState): void {
    const last = this.open.pop() as RunState;
    if (last !== run) {
      this.open[run.openAt] = last;
      last.openAt = run.openAt;
    }
    run.openAt = -1;
  }

  stageEnded(row: StageRow, late: boolean): void {
    (late ? this.stagesToMerge : this.stages).append(row);
    if (this.stages.count >= this.options.maxQueuedRows) this.full();
    else this.schedule();
  }

  /** A batch's worth of rows is pending: written now, or set apart if a write is under way. */
  private full(): void {
    if (this.flushing === undefined) {
      this.flushSoon();
      return;
    }
    this.sealed.push(this.takeBuffers());
    this.schedule();
  }

  private takeBuffers(): ColumnBatch {
    return {
      runs: this.runs.take(),
      newRuns: this.newRuns.take(),
      stages: this.stages.take(),
      stagesToMerge: this.stagesToMerge.take(),
    };
  }

  /** Runs still open in this process. */
  get openRunCount(): number {
    return this.open.length;
  }

  /** Writes everything pending now; resolves once it is in the store or in the spool. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  /**
   * Called when Node runs out of work: writes what is pending, a few times at most, so rows
   * that can be written neither to the store nor to the spool cannot keep the process alive.
   */
  async flushBeforeExit(): Promise<void> {
    if (!this.hasPending() || this.exitFlushes >= 3) return;
    this.exitFlushes += 1;
    await this.flush();
  }

  /** Writes what is pending and stops the timers. Later records are still accepted and kept. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timer = undefined;
    this.heartbeat = undefined;
    await this.flush();
    // Let go of the file now, checkpointed, rather than after the store thread's grace period.
    await storeThread.close(this.options.path).catch(() => undefined);
  }

  private hasPending(): boolean {
    return (
      this.dirty.length > 0 ||
      this.runs.count > 0 ||
      this.newRuns.count > 0 ||
      this.stages.count > 0 ||
      this.stagesToMerge.count > 0 ||
      this.held !== undefined ||
      this.sealed.length > 0
    );
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    storeThread.start();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.delay());
    this.timer.unref();
  }

  /**
   * The wait before the next write: the flush interval, or twice the time the last write held
   * the store when that is longer (up to 750 ms), so that when writes are slow each process
   * holds the file at most a third of the time and others (the CLI) get their turn, while a
   * new run still shows within about a second.
   */
  private delay(): number {
    const { flushIntervalMs } = this.options;
    return Math.max(flushIntervalMs, Math.min(2 * this.lastSessionMs, 750));
  }

  private flushSoon(): void {
    if (this.closed || this.flushing) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.flush();
  }

  private beat(): void {
    if (this.open.length === 0) return;
    for (const run of this.open) {
      if (run.dirtyAt < 0) {
        run.dirtyAt = this.dirty.length;
        this.dirty.push(run);
      }
    }
    this.schedule();
  }

  /** A run's first row is appended; once a write was tried, its row may exist: merged. */
  private appendRow(run: RunState, now: number): void {
    if (run.dirtyAt >= 0) {
      this.dirty[run.dirtyAt] = undefined;
      run.dirtyAt = -1;
    }
    (run.tried ? this.runs : this.newRuns).append(run.row(now));
    run.tried = true;
  }

  private async flushOnce(): Promise<void> {
    this.options.beforeWrite?.();
    if (!this.hasPending()) return;
    const now = Date.now() * 1000;
    for (const run of this.dirty) if (run !== undefined) this.appendRow(run, now);
    this.dirty = [];
    const batches = [
      ...(this.held ? [this.held] : []),
      ...this.sealed.splice(0),
      this.takeBuffers(),
    ];
    this.held = undefined;
    for (const [i, batch] of batches.entries()) {
      await this.write(batch);
      if (this.held === undefined) continue;
      // Kept in memory: the later batches are kept after it, in order, not written before it.
      for (const later of batches.slice(i + 1)) {
        this.hold(later, undefined);
        for (const part of partsOf(later)) recycleColumns(part);
      }
      break;
    }
  }

  /**
   * Writes a batch; then its chunks go back to the pool for the next rows. Nothing reads the
   * batch by then: the store thread has its own copy, and rows held back or spooled from here
   * were copied out of it.
   */
  private async write(batch: ColumnBatch): Promise<void> {
    try {
      await this.writeOnce(batch);
    } finally {
      for (const part of partsOf(batch)) recycleColumns(part);
    }
  }

  private async writeOnce(batch: ColumnBatch): Promise<void> {
    const rows = batch.runs.count + batch.newRuns.count;
    const stageRows = batch.stages.count + batch.stagesToMerge.count;
    this.stats.flushes += 1;
    let outcome: BatchOutcome;
    try {
      outcome = await storeThread.write(this.options.path, batch, this.options.lockWaitMs);
    } catch (error) {
      outcome = await this.spoolHere(batch, error);
    }
    this.lastSessionMs = outcome.sessionMs;
    this.stats.spoolRowsIngested += outcome.spoolRowsIngested;
    if (outcome.movedAside) {
      const { reason, to } = outcome.movedAside;
      this.warnOnce("moved", `runtrail: ${reason}; moved it to ${to} and started a new store`);
    }
    if (outcome.spoolRejectedFiles > 0) {
      this.warnOnce(
        "spool-rejected",
        "runtrail: the store refused spooled rows; kept them as .rejected files",
      );
    }
    if (outcome.written) {
      this.stats.runRowsWritten += rows;
      this.stats.stageRowsWritten += stageRows;
      if (this.failing) diag.info(`runtrail: the store ${this.options.path} can be written again`);
      this.failing = false;
      return;
    }
    if (outcome.server !== undefined && outcome.spooled) {
      if (!this.warned.has("served")) {
        this.warned.add("served");
        diag.info(
          `runtrail: the store ${this.options.path} is held by the runtrail server at ${outcome.server}; rows reach it through the spool`,
        );
      }
      this.stats.spooledSegments += 1;
      return;
    }
    this.stats.failedFlushes += 1;
    if (outcome.error && !this.failing) {
      this.warnOnce(
        outcome.error.kind,
        `runtrail: ${outcome.error.message}; the pipeline goes on and its runs are kept until the store can be written`,
      );
    }
    this.failing = true;
    if (outcome.spooled) this.stats.spooledSegments += 1;
    else if (outcome.returned) this.hold(outcome.returned, outcome.spoolError);
    if (!this.closed) this.schedule();
  }

  /**
   * Keeps the rows of a batch in memory when neither the store nor the spool takes them: merged
   * with those already kept (the latest row of each run, each stage once), up to a bound.
   */
  private hold(batch: ColumnBatch, reason: string | undefined): void {
    this.warnOnce(
      "spool-write",
      `runtrail: cannot spool rows either: ${reason ?? "unknown error"}`,
    );
    const previous = this.held ? mergeAll(this.held) : undefined;
    const next = mergeAll(batch);
    const runs = latestRunRows([
      ...(previous ? rowsOf<RunRow>(RUN_COLUMNS, previous.runs) : []),
      ...rowsOf<RunRow>(RUN_COLUMNS, next.runs),
    ]);
    const stages = new Map<string, StageRow>();
    for (const part of [previous?.stagesToMerge, next.stagesToMerge]) {
      if (part === undefined) continue;
      for (const stage of rowsOf<StageRow>(STAGE_COLUMNS, part)) {
        stages.set(`${stage.run_id}/${stage.span_id}`, stage);
      }
    }
    const limit = this.options.maxQueuedRows * 4;
    const keptStages = [...stages.values()].slice(0, Math.max(0, limit - runs.length));
    const dropped = stages.size - keptStages.length;
    if (dropped > 0) {
      this.stats.droppedRows += dropped;
      this.warnOnce("dropped", "runtrail: dropping stage rows: the store and the spool are full");
    }
    this.held = columnBatchOf({ runs, stages: [], stagesToMerge: keptStages });
  }

  /** The store thread failed: the rows go to the spool from here, or stay in memory. */
  private async spoolHere(batch: ColumnBatch, error: unknown): Promise<BatchOutcome> {
    this.warnOnce(
      "thread",
      `runtrail: the store thread failed (${String(error)}); rows go to the spool`,
    );
    const all = mergeAll(batch);
    try {
      await spoolRows(
        this.options.path,
        rowsOf<RunRow>(RUN_COLUMNS, all.runs),
        rowsOf<StageRow>(STAGE_COLUMNS, all.stagesToMerge),
      );
      return { ...NOT_WRITTEN, spooled: true };
    } catch (spoolError) {
      return { ...NOT_WRITTEN, spoolError: String(spoolError), returned: batch };
    }
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    diag.warn(message);
  }
}
