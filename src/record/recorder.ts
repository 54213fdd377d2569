import { RunTrailAttributes as R } from "./attributes.js";
import { isLlmSpanAtStart, readLlmUsage } from "./llm-usage.js";
import type { RunOwner } from "./owner.js";
import type { StageRow } from "./rows.js";
import { runIdOf } from "./run-id.js";
import { RunState, type StageState } from "./run-state.js";
import { hrTimeToMicros, type SpanView } from "./span-view.js";

/** Where the recorder puts what it learns. The store writer is one; tests use others. */
export interface RecordSink {
  /** The run started, changed (a stage started or ended) or ended: its row is due. */
  runChanged(run: RunState): void;
  /** A stage ended. `late` when its run had already ended, so the row may exist. */
  stageEnded(row: StageRow, late: boolean): void;
}

export type DropReason = "open_runs_limit" | "open_spans_limit";

export interface RecorderOptions {
  /** Root spans (no parent) are runs. Default true. */
  rootSpansAreRuns: boolean;
  /** Further spans to treat as runs, decided when the span starts. */
  isRun: ((span: SpanView) => boolean) | undefined;
  /** Spans inside a run to treat as stages; default: direct children of the run span. */
  isStage: ((span: SpanView) => boolean) | undefined;
  tenant: string | null;
  owner: RunOwner | null;
  maxOpenRuns: number;
  maxOpenSpans: number;
  onDrop: (reason: DropReason) => void;
}

/** A span of a run being followed until it ends. Whoever calls `start` keeps it for `end`. */
export interface TrackedSpan {
  readonly run: RunState;
  /** The stage the span is in (the stage itself for a stage span), none for the run span. */
  readonly stage: StageState | undefined;
  readonly parent: TrackedSpan | undefined;
  /** An LLM call below this span was counted, so totals on this span are not counted again. */
  llmBelow: boolean;
}

/**
 * Turns span starts and ends into runs and stages. It follows only spans that belong to a run,
 * keeps counters rather than spans, and does no I/O: rows go to the sink. It keeps no index of
 * spans either: `start` returns the span's state, and the caller hands it back to `end` (the
 * in-process processor keeps it on the span object itself).
 */
export class RunRecorder {
  private openRuns = 0;
  private openSpans = 0;

  constructor(
    private readonly sink: RecordSink,
    private readonly options: RecorderOptions,
  ) {}

  get openRunCount(): number {
    return this.openRuns;
  }

  /** Spans of open runs being followed. */
  get trackedSpanCount(): number {
    return this.openSpans;
  }

  /**
   * A span started. `parent` is the state `start` returned for its parent span, if it has a
   * parent in this process that is followed. Returns the span's state when it belongs to a run.
   */
  start(span: SpanView, parent: TrackedSpan | undefined): TrackedSpan | undefined {
    const parentId = span.parentSpanContext?.spanId;
    const kind = span.attributes[R.kind];
    if (this.isRun(span, parentId, kind)) return this.startRun(span, parentId === undefined);
    if (parent === undefined) return undefined;
    if (this.openSpans >= this.options.maxOpenSpans) {
      this.options.onDrop("open_spans_limit");
      return undefined;
    }
    this.openSpans += 1;
    const run = parent.run;
    if (this.isStage(span, parent, kind)) {
      const stage = run.startStage(span, parentId ?? null);
      this.sink.runChanged(run);
      return { run, stage, parent, llmBelow: false };
    }
    return { run, stage: parent.stage, parent, llmBelow: false };
  }

  /** A followed span ended; `tracked` is what `start` returned for it. */
  end(span: SpanView, tracked: TrackedSpan): void {
    this.openSpans -= 1;
    const run = tracked.run;
    const usage = readLlmUsage(span.attributes);
    if (usage !== undefined) {
      const counts = usage.role === "call" || (usage.role === "unclassified" && !tracked.llmBelow);
      if (counts) {
        run.totals.add(usage);
        tracked.stage?.totals.add(usage);
        for (let p = tracked.parent; p !== undefined && !p.llmBelow; p = p.parent) {
          p.llmBelow = true;
        }
      }
    }
    if (tracked.parent === undefined) {
      run.end(span);
      this.openRuns -= 1;
      this.sink.runChanged(run);
      return;
    }
    const stage = tracked.stage;
    if (stage !== undefined && stage.spanId === span.spanContext().spanId) {
      this.sink.stageEnded(run.endStage(stage, span), run.ended);
      this.sink.runChanged(run);
    } else if (usage !== undefined && run.ended) {
      this.sink.runChanged(run);
    }
  }

  private isRun(span: SpanView, parentId: string | undefined, kind: unknown): boolean {
    if (kind === "run") return true;
    if (kind === "stage") return false;
    if (parentId === undefined && this.options.rootSpansAreRuns) return true;
    return this.options.isRun?.(span) ?? false;
  }

  private isStage(span: SpanView, parent: TrackedSpan, kind: unknown): boolean {
    if (kind === "stage") return true;
    if (kind !== undefined) return false;
    if (this.options.isStage !== undefined) return this.options.isStage(span);
    // A direct child of the run is a stage, unless it is an LLM call made outside any stage.
    return parent.parent === undefined && !isLlmSpanAtStart(span.attributes);
  }

  private startRun(span: SpanView, isTraceRoot: boolean): TrackedSpan | undefined {
    if (this.openRuns >= this.options.maxOpenRuns) {
      this.options.onDrop("open_runs_limit");
      return undefined;
    }
    const context = span.spanContext();
    const run = new RunState(
      runIdOf(context.traceId, context.spanId, isTraceRoot),
      context.traceId,
      context.spanId,
      hrTimeToMicros(span.startTime),
      span,
      this.options.tenant,
      this.options.owner,
    );
    this.openRuns += 1;
    this.openSpans += 1;
    this.sink.runChanged(run);
    return { run, stage: undefined, parent: undefined, llmBelow: false };
  }
}
