import { type Context, diag, trace } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { type DropReason, RunRecorder } from "../record/recorder.js";
import type { SpanView } from "../record/span-view.js";
import { currentOwner } from "../store/process-owner.js";
import { resolveStorePath } from "../store/store-path.js";
import { StoreWriter, type StoreWriterStats } from "../store/store-writer.js";
import { envEnabled } from "../util/enabled.js";

/** Options of {@link RunTrailSpanProcessor}. Every one has a default. */
export interface RunTrailSpanProcessorOptions {
  /** The DuckDB store. Default: `RUNTRAIL_DB`, else `.runtrail/runs.duckdb` in the working directory. */
  db?: string;
  /** Record runs. Default: true, unless `RUNTRAIL_ENABLED=false`. */
  enabled?: boolean;
  /** Tenant of the runs recorded, unless a run says otherwise. Default: `RUNTRAIL_TENANT`, else none. */
  tenant?: string;
  /**
   * Spans without a parent, or whose parent is in another process (a `traceparent` received),
   * are runs. Default true; set false when runs are marked instead.
   */
  rootSpansAreRuns?: boolean;
  /**
   * Further spans that are runs, such as a pipeline inside an HTTP request span. Called once per
   * span, shortly after it starts (starts are recorded in batches), with the attributes it has
   * then. Spans with `runtrail.kind = "run"` are runs regardless. Default: none.
   */
  isRun?: (span: SpanView) => boolean;
  /** Spans of a run that are stages. Default: the run span's direct children, and spans with `runtrail.kind = "stage"`. */
  isStage?: (span: SpanView) => boolean;
  /** How often pending rows are written. Default 250 ms, so a run is visible within a second. */
  flushIntervalMs?: number;
  /** How often open runs show their process is alive. Default 10 s. */
  heartbeatIntervalMs?: number;
  /** How long a write waits for another process to let go of the store before spooling. Default 5 s. */
  lockWaitMs?: number;
  /** Runs open at once; more are not recorded (and counted). Default 20,000. */
  maxOpenRuns?: number;
  /** Spans inside open runs followed at once; more are not followed (and counted). Default 200,000. */
  maxOpenSpans?: number;
  /**
   * Pending stage rows (or run rows) that trigger a write before the interval. Rows that pile up
   * behind a slow write go in writes of this many each, one transaction apiece, so a write's
   * memory stays bounded and other processes get the store between them. Default 50,000.
   */
  maxQueuedRows?: number;
}

export interface RunTrailStats extends StoreWriterStats {
  openRuns: number;
  trackedSpans: number;
  droppedRuns: number;
  droppedSpans: number;
  hookErrors: number;
}

/** Processors not shut down: flushed when Node runs out of work, before it exits. */
const unflushed = new Set<RunTrailSpanProcessor>();
let listening = false;

function flushBeforeExit(processor: RunTrailSpanProcessor): void {
  if (!listening) {
    listening = true;
    process.on("beforeExit", () => {
      for (const p of unflushed) p.beforeExit();
    });
  }
  unflushed.add(processor);
}

/**
 * Span starts and ends wait in a queue and are recorded a batch at a time: when the queue is
 * full, before every write, and within {@link MAX_QUEUED_MS} of the first.
 *
 * A hook that only appends to an array costs the pipeline next to nothing, and it stays small
 * enough for V8 to inline into the SDK's span code the way it inlines a processor that does
 * nothing. Recording in the hooks themselves measured three times slower in the hot-path
 * benchmark than the same recording done here: the SDK's own functions lost their inlining.
 * A batch also runs the recorder in one tight loop while the spans are still in the cache.
 */
const QUEUE_ENTRIES = 1024;
const MAX_QUEUED_MS = 100;
/** Marks an end in the queue, where a start has its parent context. */
const ENDED = Symbol("ended");

/**
 * An OpenTelemetry span processor that records every run and stage in a DuckDB store, from the
 * moment a run starts. Add it next to your exporters:
 *
 * ```ts
 * const provider = new NodeTracerProvider({
 *   spanProcessors: [new BatchSpanProcessor(exporter), new RunTrailSpanProcessor()],
 * });
 * ```
 *
 * Its hooks only queue the span in memory and never throw; the queue is recorded in batches,
 * and rows are written every `flushIntervalMs` by a worker thread. When the store cannot be
 * used the pipeline goes on, one warning goes to the OpenTelemetry diag logger, and rows are
 * spooled until it can.
 */
export class RunTrailSpanProcessor implements SpanProcessor {
  /** The store file, resolved to an absolute path. */
  readonly db: string;
  readonly enabled: boolean;
  private readonly recorder: RunRecorder | undefined;
  private readonly writer: StoreWriter | undefined;
  /** Pairs of entries: a span, then its parent context (a start) or {@link ENDED} (an end). */
  private queue: unknown[] = [];
  private drainTimer: NodeJS.Timeout | undefined;
  private droppedRuns = 0;
  private droppedSpans = 0;
  private hookErrors = 0;
  /** Enabled and not shut down. */
  private acceptsStarts: boolean;
  private shutdownPromise: Promise<void> | undefined;

  constructor(options: RunTrailSpanProcessorOptions = {}) {
    const env = process.env;
    this.db = resolveStorePath(options.db, env);
    this.enabled = options.enabled ?? envEnabled(env);
    this.acceptsStarts = this.enabled;
    if (!this.enabled) return;
    this.writer = new StoreWriter({
      path: this.db,
      flushIntervalMs: options.flushIntervalMs ?? 250,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 10_000,
      maxQueuedRows: options.maxQueuedRows ?? 50_000,
      lockWaitMs: options.lockWaitMs ?? 5_000,
      beforeWrite: () => this.drain(),
    });
    this.recorder = new RunRecorder(this.writer, {
      rootSpansAreRuns: options.rootSpansAreRuns ?? true,
      isRun: options.isRun,
      isStage: options.isStage,
      tenant: options.tenant ?? (env.RUNTRAIL_TENANT || null),
      owner: currentOwner(),
      maxOpenRuns: options.maxOpenRuns ?? 20_000,
      maxOpenSpans: options.maxOpenSpans ?? 200_000,
      onDrop: (reason) => this.dropped(reason),
      // The span a span started under is in the context it started with.
      parentSpanOf: (context) => trace.getSpan(context as Context) as SpanView | undefined,
    });
    flushBeforeExit(this);
  }

  // The hooks are kept this small on purpose: see QUEUE_ENTRIES.
  onStart(span: Span, parentContext: Context): void {
    if (this.acceptsStarts) this.enqueue(span, parentContext);
  }

  onEnd(span: ReadableSpan): void {
    if (this.enabled) this.enqueue(span, ENDED);
  }

  /** Resolves once every run and stage seen so far is in the store, or spooled if it cannot be. */
  async forceFlush(): Promise<void> {
    this.drain();
    await this.writer?.flush();
  }

  /** Flushes and stops the timers. Safe to call more than once. */
  shutdown(): Promise<void> {
    unflushed.delete(this);
    this.acceptsStarts = false;
    this.drain();
    this.shutdownPromise ??= this.writer?.close() ?? Promise.resolve();
    return this.shutdownPromise;
  }

  /** Node ran out of work with this processor not shut down: write what is pending. */
  beforeExit(): void {
    this.drain();
    void this.writer?.flushBeforeExit();
  }

  /** Counters for monitoring and tests, with every span seen so far recorded. */
  get stats(): RunTrailStats {
    this.drain();
    const writer = this.writer?.stats;
    return {
      flushes: writer?.flushes ?? 0,
      failedFlushes: writer?.failedFlushes ?? 0,
      runRowsWritten: writer?.runRowsWritten ?? 0,
      stageRowsWritten: writer?.stageRowsWritten ?? 0,
      spooledSegments: writer?.spooledSegments ?? 0,
      spoolRowsIngested: writer?.spoolRowsIngested ?? 0,
      droppedRows: writer?.droppedRows ?? 0,
      openRuns: this.recorder?.openRunCount ?? 0,
      trackedSpans: this.recorder?.trackedSpanCount ?? 0,
      droppedRuns: this.droppedRuns,
      droppedSpans: this.droppedSpans,
      hookErrors: this.hookErrors,
    };
  }

  private dropped(reason: DropReason): void {
    const first = this.droppedRuns + this.droppedSpans === 0;
    if (reason === "open_runs_limit") this.droppedRuns += 1;
    else this.droppedSpans += 1;
    if (first)
      diag.warn(`runtrail: not recording everything: ${reason.replaceAll("_", " ")} reached`);
  }

  private enqueue(span: Span | ReadableSpan, entry: unknown): void {
    const length = this.queue.push(span, entry);
    if (length === 2) this.drainLater();
    else if (length >= QUEUE_ENTRIES) this.drain();
  }

  private drainLater(): void {
    if (this.drainTimer !== undefined) return;
    this.drainTimer = setTimeout(() => this.drain(), MAX_QUEUED_MS);
    this.drainTimer.unref();
  }

  /** Records the queued starts and ends, in order. A span that cannot be recorded is counted. */
  private drain(): void {
    if (this.drainTimer !== undefined) {
      clearTimeout(this.drainTimer);
      this.drainTimer = undefined;
    }
    const recorder = this.recorder;
    const queue = this.queue;
    if (recorder === undefined || queue.length === 0) return;
    this.queue = [];
    for (let i = 0; i < queue.length; i += 2) {
      const span = queue[i] as SpanView;
      const entry = queue[i + 1];
      try {
        if (entry === ENDED) recorder.end(span);
        else recorder.start(span, entry);
      } catch (error) {
        this.hookFailed(error);
      }
    }
  }

  private hookFailed(error: unknown): void {
    this.hookErrors += 1;
    if (this.hookErrors === 1) diag.error("runtrail: a span hook failed; recording goes on", error);
  }
}
