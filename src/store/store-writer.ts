import { statSync } from "node:fs";
import { diag } from "@opentelemetry/api";
import type { RecordSink } from "../record/recorder.js";
import { latestRunRows, type RunRow, type StageRow } from "../record/rows.js";
import type { RunState } from "../record/run-state.js";
import { ingestSpool } from "./ingest-spool.js";
import { openStore } from "./open-store.js";
import { spoolRows } from "./spool.js";
import { classifyDuckDbError, type StoreError } from "./store-errors.js";
import { writeRows } from "./write-rows.js";

export interface StoreWriterOptions {
  /** Absolute path of the DuckDB file. */
  path: string;
  /** How often pending rows are written. */
  flushIntervalMs: number;
  /** How often the rows of open runs are rewritten to show their owner is alive. */
  heartbeatIntervalMs: number;
  /** Pending stage rows that trigger a write before the interval. */
  maxQueuedRows: number;
  /** How long one write waits for another process to let go of the file. */
  lockWaitMs: number;
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
 * Takes rows from the recorder and makes them durable in the store, a batch at a time and off
 * the span hooks. When the store cannot be used it keeps the rows in the spool and says so once;
 * they are written when it can.
 */
export class StoreWriter implements RecordSink {
  private readonly dirty = new Set<RunState>();
  private readonly open = new Set<RunState>();
  private stages: StageRow[] = [];
  private stagesToMerge: StageRow[] = [];
  /** Rows taken from memory that could not be spooled either: retried first. */
  private held: { runs: RunRow[]; stages: StageRow[] } = { runs: [], stages: [] };
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private failing: StoreError | undefined;
  /** How long the last write held the store; the next waits in proportion, to share it. */
  private lastSessionMs = 0;
  private readonly warned = new Set<string>();
  private closed = false;
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
    this.dirty.add(run);
    if (run.ended) this.open.delete(run);
    else this.open.add(run);
    this.schedule();
  }

  stageEnded(row: StageRow, late: boolean): void {
    if (late) this.stagesToMerge.push(row);
    else this.stages.push(row);
    if (this.stages.length >= this.options.maxQueuedRows) this.flushSoon();
    else this.schedule();
  }

  /** Runs still open in this process. */
  get openRunCount(): number {
    return this.open.size;
  }

  /** Writes everything pending now; resolves once it is in the store or in the spool. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  /** Writes what is pending and stops the timers. Later records are still accepted and kept. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timer = undefined;
    this.heartbeat = undefined;
    await this.flush();
  }

  private hasPending(): boolean {
    return (
      this.dirty.size > 0 ||
      this.stages.length > 0 ||
      this.stagesToMerge.length > 0 ||
      this.held.runs.length > 0 ||
      this.held.stages.length > 0
    );
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
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
    if (this.open.size === 0) return;
    for (const run of this.open) this.dirty.add(run);
    this.schedule();
  }

  private async flushOnce(): Promise<void> {
    if (!this.hasPending()) return;
    const now = Date.now() * 1000;
    const runs = latestRunRows([...this.held.runs, ...[...this.dirty].map((run) => run.row(now))]);
    const stages = this.stages;
    const stagesToMerge = [...this.held.stages, ...this.stagesToMerge];
    this.dirty.clear();
    this.stages = [];
    this.stagesToMerge = [];
    this.held = { runs: [], stages: [] };
    this.stats.flushes += 1;
    try {
      const replaced = await this.write(runs, stages, stagesToMerge);
      if (replaced) {
        // The file was swapped or deleted while we wrote: write the rows again to the new one.
        await this.write(runs, [], [...stages, ...stagesToMerge]);
      }
      this.stats.runRowsWritten += runs.length;
      this.stats.stageRowsWritten += stages.length + stagesToMerge.length;
      this.recovered();
    } catch (error) {
      this.stats.failedFlushes += 1;
      await this.keep(
        runs,
        [...stages, ...stagesToMerge],
        classifyDuckDbError(this.options.path, error),
      );
    }
  }

  /** One session: spooled rows first, then ours. Returns true if the file was replaced meanwhile. */
  private async write(
    runs: RunRow[],
    stages: StageRow[],
    stagesToMerge: StageRow[],
  ): Promise<boolean> {
    const session = await openStore(this.options.path, {
      lockTimeoutMs: this.options.lockWaitMs,
      onMovedAside: (_from, to, reason) =>
        this.warnOnce("moved", `runtrail: ${reason}; moved it to ${to} and started a new store`),
    });
    let inode: number | undefined;
    const opened = performance.now();
    try {
      inode = inodeOf(this.options.path);
      const spool = await ingestSpool(session);
      this.stats.spoolRowsIngested += spool.rows;
      if (spool.rejectedFiles > 0) {
        this.warnOnce(
          "spool-rejected",
          "runtrail: the store refused spooled rows; kept them as .rejected files",
        );
      }
      await writeRows(session, { runs, stages, stagesToMerge });
    } finally {
      session.close();
      this.lastSessionMs = performance.now() - opened;
    }
    return inode !== inodeOf(this.options.path);
  }

  /** The store refused the batch: keep it in the spool, or in memory if even that fails. */
  private async keep(runs: RunRow[], stages: StageRow[], error: StoreError): Promise<void> {
    if (!this.failing) {
      this.warnOnce(
        error.kind,
        `runtrail: ${error.message}; the pipeline goes on and its runs are kept until the store can be written`,
      );
    }
    this.failing = error;
    try {
      await spoolRows(this.options.path, runs, stages);
      this.stats.spooledSegments += 1;
    } catch (spoolError) {
      this.warnOnce("spool-write", `runtrail: cannot spool rows either: ${String(spoolError)}`);
      const limit = this.options.maxQueuedRows * 4;
      const room = Math.max(0, limit - this.held.stages.length);
      this.held.runs.push(...runs);
      this.held.stages.push(...stages.slice(0, room));
      const dropped = Math.max(0, stages.length - room);
      if (dropped > 0) {
        this.stats.droppedRows += dropped;
        this.warnOnce("dropped", "runtrail: dropping stage rows: the store and the spool are full");
      }
    }
    if (!this.closed) this.schedule();
  }

  private recovered(): void {
    if (!this.failing) return;
    diag.info(`runtrail: the store ${this.options.path} can be written again`);
    this.failing = undefined;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    diag.warn(message);
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
