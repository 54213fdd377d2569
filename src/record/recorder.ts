import type { SpanContext } from "@opentelemetry/api";
import { ARTIFACT_KIND, RunTrailAttributes as R } from "./attributes.js";
import { isLlmSpanAtStart, type LlmUsage, readLlmUsage } from "./llm-usage.js";
import type { RunOwner } from "./owner.js";
import type { StageRow } from "./rows.js";
import { runIdOf } from "./run-id.js";
import { type FollowedSpan, RunState, type StageState } from "./run-state.js";
import { SpanIndex } from "./span-index.js";
import { hrTimeToMicros, type SpanView } from "./span-view.js";

/** Where the recorder puts what it learns. The store writer is one; tests use others. */
export interface RecordSink {
  /** The run started, changed (a stage started or ended) or ended: its row is due. */
  runChanged(run: RunState): void;
  /** A stage ended. `late` when its run had already ended, so the row may exist. */
  stageEnded(row: StageRow, late: boolean): void;
}

export type DropReason = "open_runs_limit" | "open_spans_limit";

/** States of ended runs kept for spans below them that end late: this many runs at most ... */
const KEPT_ENDED_RUNS = 1000;
/** ... and for this long at most. */
const KEPT_ENDED_MS = 60_000;

export interface RecorderOptions {
  /** Root spans (no parent, or a parent in another process) are runs. Default true. */
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
  /** The parent span of a starting span, from the handle given to `start`. */
  parentSpanOf?: (handle: unknown) => SpanView | undefined;
}

/**
 * Turns span starts and ends into runs and stages. It keeps counters rather than spans, and
 * does no I/O: rows go to the sink.
 *
 * Most spans are leaves (LLM calls, HTTP calls) and cost one lookup of their parent when they
 * start and one when they end: the recorder indexes only runs, stages, and spans that turn out
 * to have children, the moment their first child starts, and a span whose parent has no
 * indexed children cannot be indexed itself.
 *
 * A span's state outlives the span until its run has ended and a little more (the 1,000 runs
 * that ended last, for up to a minute), so that a span ending after its parent still counts;
 * then the run's states go, with those of spans that never ended. The states of ended runs
 * move to an index of their own, so that the one the open runs use stays small and quick.
 */
export class RunRecorder {
  /** States of the spans of open runs. */
  private readonly live = new SpanIndex<FollowedSpan>();
  /** States of the spans of runs that ended, kept a while for spans that end late. */
  private readonly retired = new SpanIndex<FollowedSpan>();
  /** Runs that ended, oldest first, whose states are still indexed. */
  private readonly ended: { run: RunState; at: number }[] = [];
  private openRuns = 0;
  /** Open runs that have a parent span. */
  private openNestedRuns = 0;

  constructor(
    private readonly sink: RecordSink,
    private readonly options: RecorderOptions,
  ) {}

  get openRunCount(): number {
    return this.openRuns;
  }

  /** Spans of open runs indexed: runs, stages and parents. */
  get trackedSpanCount(): number {
    return this.live.size + this.retired.size;
  }

  /**
   * A span started. `parentHandle` lets `options.parentSpanOf` find its parent span (in
   * process, the context it started in): if that parent is not indexed yet, it is now, from its
   * own parent. It is only looked at then.
   */
  start(span: SpanView, parentHandle?: unknown): void {
    const parentContext = span.parentSpanContext;
    const parentId = parentContext?.spanId;
    const kind = span.attributes[R.kind];
    if (this.isRun(span, parentContext, kind)) {
      this.startRun(span, parentId);
      return;
    }
    if (parentId === undefined) return;
    const parent =
      this.find(parentId) ?? this.adopt(parentId, this.options.parentSpanOf?.(parentHandle));
    if (parent === undefined) return;
    parent.run.openSpans += 1;
    if (this.isStage(span, parent, kind)) {
      if (!this.roomFor()) return;
      const run = parent.run;
      const stage = run.startStage(span, parentId);
      this.follow({
        spanId: stage.spanId,
        run,
        stage,
        parent,
        isStage: true,
        ended: false,
        llmBelow: false,
        followedChildren: 0,
      });
      this.sink.runChanged(run);
    }
  }

  /** A span ended. */
  end(span: SpanView): void {
    const parentId = span.parentSpanContext?.spanId;
    const parent = parentId === undefined ? undefined : this.find(parentId);
    // Only a span whose parent has followed children can be followed itself; a nested run
    // is a followed child its parent may not know of.
    const own =
      parent !== undefined && parent.followedChildren === 0 && this.openNestedRuns === 0
        ? undefined
        : this.find(span.spanContext().spanId);
    if (own === undefined) {
      if (parent !== undefined) {
        this.endLeaf(span, parent);
        this.spanEnded(parent.run);
      }
      return;
    }
    if (own.ended) return;
    own.ended = true;
    const run = own.run;
    const usage = readLlmUsage(span.attributes);
    if (usage !== undefined) {
      const counts = usage.role === "call" || (usage.role === "unclassified" && !own.llmBelow);
      if (counts) this.count(usage, own.stage, run, own.parent);
    }
    if (own.parent === undefined) {
      run.end(span);
      this.openRuns -= 1;
      if (run.nested) this.openNestedRuns -= 1;
      this.sink.runChanged(run);
      this.retire(run);
      return;
    }
    if (own.isStage && own.stage !== undefined) {
      this.sink.stageEnded(run.endStage(own.stage, span), run.ended);
      this.sink.runChanged(run);
    }
    this.spanEnded(run);
  }

  /** A span that never had children ended: it counts through its parent. */
  private endLeaf(span: SpanView, parent: FollowedSpan): void {
    const usage = readLlmUsage(span.attributes);
    if (usage === undefined) {
      if (span.attributes[R.kind] === ARTIFACT_KIND) {
        parent.run.addArtifact(span, parent.stage);
        this.sink.runChanged(parent.run);
      }
      return;
    }
    // A leaf has nothing below it, so an unclassified one is a call too.
    if (usage.role === "aggregate") return;
    this.count(usage, parent.stage, parent.run, parent);
  }

  /**
   * Adds an LLM call to its stage and run, and marks the spans above it. A call that ends after
   * its stage or run rewrites their rows.
   */
  private count(
    usage: LlmUsage,
    stage: StageState | undefined,
    run: RunState,
    above: FollowedSpan | undefined,
  ): void {
    run.add(usage);
    stage?.add(usage);
    for (let p = above; p !== undefined && !p.llmBelow; p = p.parent) p.llmBelow = true;
    const lateRow = stage?.lateRow();
    if (lateRow !== undefined) this.sink.stageEnded(lateRow, true);
    if (run.ended) this.sink.runChanged(run);
  }

  /**
   * A span of `run` ended (not the run span), its part recorded. The last one of a run that
   * ended settles the run: its row is final, and its states go.
   */
  private spanEnded(run: RunState): void {
    if (run.openSpans > 0) run.openSpans -= 1;
    if (run.openSpans === 0 && run.ended) {
      this.sink.runChanged(run);
      this.forget(run, this.retired);
    }
  }

  /**
   * Lets go of the states of a run that ended with every span below it ended; keeps those of a
   * run with spans still open in the retired index, and drops those of runs that ended long
   * enough ago.
   */
  private retire(run: RunState): void {
    if (run.openSpans === 0) {
      this.forget(run, this.live);
      return;
    }
    for (const state of run.followed) {
      if (this.live.get(state.spanId) === state) {
        this.live.delete(state.spanId);
        this.retired.set(state.spanId, state);
      }
    }
    const now = Date.now();
    this.ended.push({ run, at: now });
    while (this.ended.length > 0) {
      const oldest = this.ended[0] as { run: RunState; at: number };
      if (this.ended.length <= KEPT_ENDED_RUNS && now - oldest.at < KEPT_ENDED_MS) break;
      this.forgetOldestEnded();
    }
  }

  private forgetOldestEnded(): void {
    const oldest = this.ended.shift();
    if (oldest !== undefined) this.forget(oldest.run, this.retired);
  }

  private forget(run: RunState, index: SpanIndex<FollowedSpan>): void {
    for (const state of run.followed) index.delete(state.spanId, state);
    run.settle();
  }

  /** The state of a followed span, from the open runs first. */
  private find(spanId: string): FollowedSpan | undefined {
    const state = this.live.get(spanId);
    if (state !== undefined || this.retired.size === 0) return state;
    return this.retired.get(spanId);
  }

  private follow(state: FollowedSpan): void {
    (state.run.ended ? this.retired : this.live).set(state.spanId, state);
    state.run.followed.push(state);
    if (state.parent !== undefined) state.parent.followedChildren += 1;
  }

  /**
   * Indexes a parent the first time a child of it starts, through its own parent, which is
   * indexed by then: every span's parent is indexed when the span itself starts.
   */
  private adopt(parentId: string, parentSpan: SpanView | undefined): FollowedSpan | undefined {
    const grandparentId = parentSpan?.parentSpanContext?.spanId;
    if (parentSpan === undefined || grandparentId === undefined) return undefined;
    if (parentSpan.spanContext().spanId !== parentId) return undefined;
    const grandparent = this.find(grandparentId);
    if (grandparent === undefined || !this.roomFor()) return undefined;
    const adopted: FollowedSpan = {
      spanId: parentId,
      run: grandparent.run,
      stage: grandparent.stage,
      parent: grandparent,
      isStage: false,
      ended: false,
      llmBelow: false,
      followedChildren: 0,
    };
    this.follow(adopted);
    return adopted;
  }

  private roomFor(): boolean {
    // Ended runs make room first: their states only wait for late spans.
    while (this.trackedSpanCount >= this.options.maxOpenSpans && this.ended.length > 0) {
      this.forgetOldestEnded();
    }
    if (this.trackedSpanCount < this.options.maxOpenSpans) return true;
    this.options.onDrop("open_spans_limit");
    return false;
  }

  /**
   * A root span is a run: one without a parent, or whose parent is in another process (its
   * context came in a request's `traceparent`, or a job's environment), the root of what this
   * process does.
   */
  private isRun(span: SpanView, parent: SpanContext | undefined, kind: unknown): boolean {
    if (kind === "run") return true;
    if (kind !== undefined) return false;
    if (this.options.rootSpansAreRuns && (parent === undefined || parent.isRemote === true)) {
      return true;
    }
    return this.options.isRun?.(span) ?? false;
  }

  private isStage(span: SpanView, parent: FollowedSpan, kind: unknown): boolean {
    if (kind === "stage") return true;
    if (kind !== undefined) return false;
    if (this.options.isStage !== undefined) return this.options.isStage(span);
    // A direct child of the run is a stage, unless it is an LLM call made outside any stage.
    return parent.parent === undefined && !isLlmSpanAtStart(span.attributes);
  }

  private startRun(span: SpanView, parentId: string | undefined): void {
    if (this.openRuns >= this.options.maxOpenRuns) {
      this.options.onDrop("open_runs_limit");
      return;
    }
    if (!this.roomFor()) return;
    const context = span.spanContext();
    const run = new RunState(
      runIdOf(context.traceId, context.spanId, parentId === undefined),
      context.traceId,
      context.spanId,
      hrTimeToMicros(span.startTime),
      span,
      this.options.tenant,
      this.options.owner,
    );
    this.openRuns += 1;
    if (parentId !== undefined) {
      run.nested = true;
      this.openNestedRuns += 1;
    }
    this.follow({
      spanId: context.spanId,
      run,
      stage: undefined,
      parent: undefined,
      isStage: false,
      ended: false,
      llmBelow: false,
      followedChildren: 0,
    });
    this.sink.runChanged(run);
  }
}
