import { statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunRow, StageRow } from "../record/rows.js";
import { rowsOf } from "./column-batch.js";
import { ingestSpool } from "./ingest-spool.js";
import { HELD_CHECKPOINT_THRESHOLD, openStore } from "./open-store.js";
import { RUN_COLUMNS, STAGE_COLUMNS } from "./row-columns.js";
import { liveClaim } from "./server-claim.js";
import { spoolRows } from "./spool.js";
import { classifyDuckDbError, type StoreErrorKind } from "./store-errors.js";
import type { StoreSession } from "./store-session.js";
import { askedSince, readerWaiting } from "./store-wanted.js";
import { type ColumnBatch, mergeAll, writeColumns } from "./write-rows.js";

export interface BatchOutcome {
  /** The rows are in the store. */
  written: boolean;
  /** How long the store was held. */
  sessionMs: number;
  /** Rows other writers had spooled, written along. */
  spoolRowsIngested: number;
  spoolRejectedFiles: number;
  /** A damaged store this write moved aside. */
  movedAside?: { to: string; reason: string };
  /** Why the rows are not in the store. */
  error?: { kind: StoreErrorKind; message: string };
  /** Not written but kept in the spool. */
  spooled: boolean;
  /** A runtrail server holds the store (its URL): the spool is the way in, not a failure. */
  server?: string;
  spoolError?: string;
  /** Neither written nor spooled: the rows, handed back for the caller to keep. */
  returned?: ColumnBatch;
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

export interface BatchWriterOptions {
  /** How long a write waits for another process to let go of the file. */
  lockWaitMs: number;
  /** How long the store stays open after a write, for the next one. Default 100 ms. */
  graceMs?: number;
  /**
   * How long the store may stay open across writes once another process or thread has asked
   * for it (see `askForStore`). Default 1 s.
   */
  shareAfterMs?: number;
  /**
   * How long the store may stay open across writes when no one asks for it. Default 5 s: half
   * the CLI's wait for the file, for a reader that cannot ask (one that may not write in the
   * store's folder).
   */
  maxHoldMs?: number;
}

/**
 * How long a writer that let go of the store for someone who asked waits before it takes the
 * store again: longer than the pause between the tries of a process waiting for the file (at
 * most 150 ms, see `openStore`), so that the one who asked gets in, not the writer again.
 */
const YIELD_MS = 250;

interface Held {
  session: StoreSession;
  inode: number | undefined;
  /** `performance.now()` when opened. */
  openedAt: number;
  /** `Date.now()` when opened: asks for the store since then count. */
  openedAtEpochMs: number;
}

/**
 * The store is let go once held this long when a command waits for it: soon for the person
 * waiting, yet not after every write, which would spend the writer's time closing and opening.
 */
const READER_HOLD_MS = 250;

/**
 * Makes batches durable in one store. Each batch is one transaction: committed, it is durable.
 * Between batches that follow each other closely the store stays open, so opening and
 * checkpointing are paid once for several: up to `maxHoldMs` while no one else asks for it, and
 * `shareAfterMs` once someone does; then it is checkpointed and closed, for other processes to
 * take their turn. If the file was replaced or deleted meanwhile, the batch is written again to
 * the file now at the path. When the store cannot be used, the rows go to the spool instead.
 */
export class BatchWriter {
  private held: Held | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** The store being checkpointed and closed, until it is (and, after a yield, a little more). */
  private closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly options: BatchWriterOptions,
  ) {}

  async write(batch: ColumnBatch): Promise<BatchOutcome> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const outcome: BatchOutcome = {
      written: false,
      sessionMs: 0,
      spoolRowsIngested: 0,
      spoolRejectedFiles: 0,
      spooled: false,
    };
    const started = performance.now();
    const claim = liveClaim(this.path);
    if (claim !== undefined) {
      // The server writes the spool in within a fraction of a second: no wait for the file.
      this.close();
      outcome.server = claim.url;
      await this.spool(batch, outcome);
      if (!outcome.spooled) {
        outcome.error = {
          kind: "locked",
          message: `the store ${this.path} is held by the runtrail server at ${claim.url}`,
        };
      }
      outcome.sessionMs = performance.now() - started;
      return outcome;
    }
    try {
      await this.writeOnce(batch, outcome);
      // The file was swapped or deleted while we held it: the stage rows may exist in the new one.
      if (!this.stillThere()) {
        this.close();
        await this.writeOnce(mergeAll(batch), outcome);
      }
      outcome.written = true;
    } catch (error) {
      this.close();
      const failure = classifyDuckDbError(this.path, error);
      outcome.error = { kind: failure.kind, message: failure.message };
      await this.spool(batch, outcome);
    }
    this.release();
    outcome.sessionMs = performance.now() - started;
    return outcome;
  }

  /** Checkpoints and closes the store if it is open. */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const held = this.held;
    this.held = undefined;
    held?.session.close();
  }

  private async writeOnce(batch: ColumnBatch, outcome: BatchOutcome): Promise<void> {
    const held = await this.open(outcome);
    const spool = await ingestSpool(held.session);
    outcome.spoolRowsIngested += spool.rows;
    outcome.spoolRejectedFiles += spool.rejectedFiles;
    await writeColumns(held.session, batch);
  }

  private async open(outcome: BatchOutcome): Promise<Held> {
    if (this.held) return this.held;
    await this.closing;
    const session = await openStore(this.path, {
      lockTimeoutMs: this.options.lockWaitMs,
      // Two DuckDB threads, each storing a share of a large batch's rows: a batch of 50,000
      // stage rows is written in about two thirds of the time one thread takes. A small batch
      // (one flush of a pipeline that keeps up) is read by one.
      threads: 2,
      anyInsertOrder: true,
      checkpointThreshold: HELD_CHECKPOINT_THRESHOLD,
      onMovedAside: (_from, to, reason) => {
        outcome.movedAside = { to, reason };
      },
    });
    // This thread waits while its writes run: DuckDB reads the columns as it needs them.
    session.staging = "function";
    const openedAt = performance.now();
    const openedAtEpochMs = Date.now();
    this.held = { session, inode: inodeOf(this.path), openedAt, openedAtEpochMs };
    return this.held;
  }

  private stillThere(): boolean {
    return this.held !== undefined && this.held.inode === inodeOf(this.path);
  }

  /**
   * How long the store may be held: a command someone waits for gets it after this write;
   * other writers that asked, in turns; no one, up to the longest hold.
   */
  private holdLimitMs(asked: boolean): number {
    if (readerWaiting(this.path)) return READER_HOLD_MS;
    return asked ? (this.options.shareAfterMs ?? 1000) : (this.options.maxHoldMs ?? 5_000);
  }

  /** Keeps the store open a little for the next batch, unless it has been held long enough. */
  private release(): void {
    const held = this.held;
    if (held === undefined) return;
    const graceMs = this.options.graceMs ?? 100;
    const heldMs = performance.now() - held.openedAt + graceMs;
    const asked = askedSince(this.path, held.openedAtEpochMs);
    const limitMs = this.holdLimitMs(asked);
    if (heldMs > limitMs) {
      void this.letGo(asked);
      return;
    }
    this.idle = setTimeout(() => void this.checkpointAndClose(), graceMs);
    this.idle.unref();
  }

  /** Checkpoints and closes the store if it is open, letting other processes in. */
  checkpointAndClose(): Promise<void> {
    return this.letGo(false);
  }

  /**
   * Checkpoints and closes the store if it is open; `yielding` when someone asked for it, who
   * then gets a head start: the next batch waits for the close, and then {@link YIELD_MS}.
   */
  private async letGo(yielding: boolean): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const held = this.held;
    if (held === undefined) return this.closing;
    // Detached first: a write that comes meanwhile opens the store anew, once this one is closed.
    this.held = undefined;
    const closing = (async () => {
      try {
        // Closing checkpoints; done here, on DuckDB's threads, it leaves little for close().
        await held.session.run("CHECKPOINT");
      } catch {
        // close() checkpoints again, or the write-ahead log keeps the data for the next opener.
      }
      try {
        held.session.close();
      } catch {
        // The committed batches are in the write-ahead log, which the next opener replays; the
        // session let go of its lock whatever happened.
      }
      if (yielding) await sleep(YIELD_MS);
    })();
    this.closing = closing;
    await closing;
    if (this.closing === closing) this.closing = undefined;
  }

  private async spool(batch: ColumnBatch, outcome: BatchOutcome): Promise<void> {
    try {
      const all = mergeAll(batch);
      await spoolRows(
        this.path,
        rowsOf<RunRow>(RUN_COLUMNS, all.runs),
        rowsOf<StageRow>(STAGE_COLUMNS, all.stagesToMerge),
      );
      outcome.spooled = true;
    } catch (spoolError) {
      outcome.spoolError = String(spoolError);
      outcome.returned = batch;
    }
  }
}
