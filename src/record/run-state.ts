import type { Attributes } from "@opentelemetry/api";
import { isoOfMicros, LAST_MS } from "../util/duration.js";
import { RunTrailAttributes as R, SemconvAttributes as S } from "./attributes.js";
import type { LlmUsage } from "./llm-usage.js";
import type { RunOwner } from "./owner.js";
import type { ArtifactRow, RunRow, StageRow } from "./rows.js";
import {
  finishedRunStatus,
  parseDeclaredResult,
  type RunStatus,
  type StageStatus,
} from "./run-status.js";
import { errorLine, type SpanError, spanError, spanFailed } from "./span-errors.js";
import { countAttribute, hrTimeToMicros, type SpanView, stringAttribute } from "./span-view.js";

/** What the executions of a stage name did, as bits of a number. */
const StageBits = {
  /** The last execution failed. */
  lastFailed: 1,
  /** Some execution failed. */
  everFailed: 2,
  /** Some execution completed. */
  everCompleted: 4,
  /** The last execution's attempt number is stored above these bits. */
  attemptShift: 3,
} as const;

/** A span of a run the recorder follows: the run itself, a stage, or a span with children. */
export interface FollowedSpan {
  readonly spanId: string;
  readonly run: RunState;
  /** The stage the span is in (the stage itself for a stage span), none for the run span. */
  readonly stage: StageState | undefined;
  readonly parent: FollowedSpan | undefined;
  /** This span is the stage `stage`. */
  readonly isStage: boolean;
  /** The span has ended; its state stays a while for spans below it that end later. */
  ended: boolean;
  /** An LLM call below this span was counted, so totals on this span are not counted again. */
  llmBelow: boolean;
  /** Followed spans whose parent this is. With none, a child that ends is a leaf. */
  followedChildren: number;
}

/** LLM calls and tokens summed over the spans below a run or a stage. */
export class LlmTotals {
  llmCalls = 0;
  inputTokens = 0;
  outputTokens = 0;
  tokens = 0;

  add(usage: LlmUsage): void {
    this.llmCalls += 1;
    this.inputTokens += usage.inputTokens;
    this.outputTokens += usage.outputTokens;
    this.tokens += usage.tokens;
  }
}

/** A stage while it runs, with the LLM totals of the spans below it. */
export class StageState extends LlmTotals {
  /** The row written when the stage ended. */
  row: StageRow | undefined;

  constructor(
    readonly run: RunState,
    readonly spanId: string,
    readonly parentSpanId: string | null,
    readonly name: string,
    readonly seq: number,
    readonly attempt: number,
    readonly startedAt: number,
  ) {
    super();
  }

  /** After the stage ended, its row with the totals as they are now (a late span added to them). */
  lateRow(): StageRow | undefined {
    if (this.row === undefined) return undefined;
    this.row = {
      ...this.row,
      llm_calls: this.llmCalls,
      tokens: this.tokens,
      input_tokens: this.inputTokens,
      output_tokens: this.outputTokens,
    };
    return this.row;
  }
}

interface FinishedRun {
  finishedAt: number;
  status: RunStatus;
  statusReason: string | null;
  error: SpanError | null;
  failedStage: string | null;
}

/**
 * A run from its start to its end, and a little after: late spans still add to it. It keeps
 * only counters (its LLM totals are its own fields) and the few stage facts the run row needs,
 * never the spans themselves.
 */
export class RunState extends LlmTotals {
  pipeline: string;
  tenantId: string | null;
  readonly serviceName: string | null;
  inputFingerprint: string | null;
  codeRef: string | null;
  configHash: string | null;
  deadlineAt: number | null;
  stagesExpected: number | null;
  metadata: Record<string, unknown> | null = null;
  resumedFrom: string | null;
  cachedFrom: string | null;
  entryPoint: string | null;
  inputSnapshot: string | null;
  /** Artifacts in order of creation; see {@link addArtifact}. Replaced, never changed. */
  artifacts: ArtifactRow[] | null = null;
  explicitRowsIn: number | null = null;
  explicitRowsOut: number | null = null;
  explicitRetryCount: number | null = null;
  /** Set by the writer: where the run waits in its list of rows due, -1 when it does not. */
  dirtyAt = -1;
  /** Set by the writer: where the run is in its list of open runs, -1 when it is not in it. */
  openAt = -1;
  /** Set by the writer once it tried to write the run's row: the row may exist from then on. */
  tried = false;
  /** The spans the recorder follows for this run, to let go of them after it ended. */
  readonly followed: FollowedSpan[] = [];
  /** Spans below the run that started and have not ended: late spans to wait for. */
  openSpans = 0;
  /** The run span has a parent: the run is nested in a trace. */
  nested = false;
  /** The run span, once ended: a stage that ends later decides the run's status anew. */
  private endedSpan: SpanView | undefined;

  private nextSeq = 0;
  private readonly openStages: StageState[] = [];
  /**
   * Every stage name, in the order it first ran (a Map keeps insertion order), with what its
   * executions did, in bits: see {@link StageBits}. One map per run rather than a set each.
   */
  private readonly stageNames = new Map<string, number>();
  private failedNames = 0;
  private completedNames = 0;
  private retries = 0;
  /** Rows in of the first stage (by sequence) that reported them, and rows out of the last. */
  private firstRowsInSeq = Number.POSITIVE_INFINITY;
  private firstRowsIn: number | null = null;
  private lastRowsOutSeq = Number.NEGATIVE_INFINITY;
  private lastRowsOut: number | null = null;
  private lastFailedStage: { name: string; error: SpanError | null } | null = null;
  private finished: FinishedRun | null = null;

  constructor(
    readonly runId: string,
    readonly traceId: string,
    readonly spanId: string,
    readonly startedAt: number,
    span: SpanView,
    defaultTenant: string | null,
    readonly owner: RunOwner | null,
  ) {
    super();
    const attributes = span.attributes;
    this.pipeline = pipelineName(span);
    this.tenantId = stringAttribute(attributes[R.tenant]) ?? defaultTenant;
    this.serviceName = stringAttribute(span.resource.attributes[S.serviceName]) ?? null;
    this.inputFingerprint = stringAttribute(attributes[R.inputFingerprint]) ?? null;
    this.codeRef = codeRefOf(attributes);
    this.configHash = stringAttribute(attributes[R.configHash]) ?? null;
    this.deadlineAt = deadlineOf(attributes, startedAt);
    this.stagesExpected = countAttribute(attributes[R.stagesExpected]) ?? null;
    this.explicitRetryCount = countAttribute(attributes[R.retryCount]) ?? null;
    this.resumedFrom = stringAttribute(attributes[R.resumedFrom]) ?? null;
    this.cachedFrom = stringAttribute(attributes[R.runCachedFrom]) ?? null;
    this.entryPoint = stringAttribute(attributes[R.entryPoint]) ?? null;
    this.inputSnapshot = stringAttribute(attributes[R.inputSnapshot]) ?? null;
  }

  /**
   * Adds the artifact an artifact span describes (a span of `runtrail.kind = "artifact"`), in
   * order of its sequence number; the same one twice is kept once.
   */
  addArtifact(span: SpanView, stage: StageState | undefined): void {
    const a = span.attributes;
    const seq = countAttribute(a[R.artifactSeq]);
    const file = stringAttribute(a[R.artifactFile]);
    if (seq === undefined || file === undefined) return;
    let metadata: Record<string, unknown> | null = null;
    const text = stringAttribute(a[R.artifactMetadata]);
    if (text !== undefined) {
      try {
        const parsed: unknown = JSON.parse(text);
        metadata =
          parsed !== null && typeof parsed === "object"
            ? (parsed as Record<string, unknown>)
            : { value: parsed };
      } catch {
        metadata = { value: text };
      }
    }
    const row: ArtifactRow = {
      seq,
      kind: stringAttribute(a[R.artifactKind]) ?? "artifact",
      file,
      media_type: stringAttribute(a[R.artifactMediaType]) ?? "application/octet-stream",
      size: countAttribute(a[R.artifactSize]) ?? 0,
      sha256: stringAttribute(a[R.artifactSha256]) ?? "",
      metadata,
      stage: stringAttribute(a[R.artifactStage]) ?? stage?.name ?? null,
      created_at: isoOfMicros(hrTimeToMicros(span.startTime)),
    };
    const list = this.artifacts ?? [];
    if (list.some((other) => other.seq === seq)) return;
    let at = list.length;
    while (at > 0 && (list[at - 1] as ArtifactRow).seq > seq) at--;
    // A new list each time, so that the rows given out share it without copying it.
    this.artifacts = list.toSpliced(at, 0, row);
  }

  get ended(): boolean {
    return this.finished !== null;
  }

  /** The run ended and so did every span below it that started: its row is final. */
  get settled(): boolean {
    return this.finished !== null && this.openSpans === 0;
  }

  /**
   * The run ended and so did every span below it: nothing can change its status any more, so
   * it lets go of its span and of what only late spans would need.
   */
  settle(): void {
    this.endedSpan = undefined;
    this.followed.length = 0;
  }

  startStage(span: SpanView, parentSpanId: string | null): StageState {
    const name = span.name;
    const seq = this.nextSeq++;
    const previous = this.stageNames.get(name);
    if (previous === undefined) this.stageNames.set(name, 0);
    const declared = countAttribute(span.attributes[R.stageAttempt]);
    // A start after a failed execution of the same name is a retry.
    // A start after a failed execution of the same name is a retry, unless another execution of
    // that name is still going: stages running side by side are not retries of each other.
    const retry =
      previous !== undefined &&
      (previous & StageBits.lastFailed) !== 0 &&
      !this.openStages.some((open) => open.name === name);
    const attempt = declared ?? (retry ? (previous >> StageBits.attemptShift) + 1 : 1);
    if (attempt > 1) this.retries += 1;
    const stage = new StageState(
      this,
      span.spanContext().spanId,
      parentSpanId,
      name,
      seq,
      attempt,
      hrTimeToMicros(span.startTime),
    );
    this.openStages.push(stage);
    return stage;
  }

  /** Closes a stage and returns its row. */
  endStage(stage: StageState, span: SpanView): StageRow {
    if (this.openStages[this.openStages.length - 1] === stage) this.openStages.pop();
    else {
      const index = this.openStages.indexOf(stage);
      if (index >= 0) this.openStages.splice(index, 1);
    }
    const failed = spanFailed(span);
    const attributes = span.attributes;
    const cachedFrom = failed ? null : (stringAttribute(attributes[R.stageCachedFrom]) ?? null);
    const status: StageStatus = failed ? "failed" : cachedFrom !== null ? "cached" : "completed";
    const error = failed ? spanError(span) : null;
    const rowsIn = countAttribute(attributes[R.rowsIn]) ?? null;
    const rowsOut = countAttribute(attributes[R.rowsOut]) ?? null;
    const bits = this.stageNames.get(stage.name) ?? 0;
    if (failed && !(bits & StageBits.everFailed)) this.failedNames += 1;
    if (!failed && !(bits & StageBits.everCompleted)) this.completedNames += 1;
    this.stageNames.set(
      stage.name,
      (stage.attempt << StageBits.attemptShift) |
        (bits & (StageBits.everFailed | StageBits.everCompleted)) |
        (failed ? StageBits.everFailed | StageBits.lastFailed : StageBits.everCompleted),
    );
    if (failed) this.lastFailedStage = { name: stage.name, error };
    if (rowsIn !== null && stage.seq < this.firstRowsInSeq) {
      this.firstRowsInSeq = stage.seq;
      this.firstRowsIn = rowsIn;
    }
    if (rowsOut !== null && stage.seq > this.lastRowsOutSeq) {
      this.lastRowsOutSeq = stage.seq;
      this.lastRowsOut = rowsOut;
    }
    const finishedAt = hrTimeToMicros(span.endTime);
    stage.row = {
      run_id: this.runId,
      span_id: stage.spanId,
      parent_span_id: stage.parentSpanId,
      name: stage.name,
      seq: stage.seq,
      attempt: stage.attempt,
      status,
      error_type: error?.type ?? null,
      error_message: error?.message ?? null,
      error_stack: error?.stack ?? null,
      started_at: stage.startedAt,
      finished_at: finishedAt,
      duration_seconds: (finishedAt - stage.startedAt) / 1e6,
      rows_in: rowsIn,
      rows_out: rowsOut,
      llm_calls: stage.llmCalls,
      tokens: stage.tokens,
      input_tokens: stage.inputTokens,
      output_tokens: stage.outputTokens,
      metadata: metadataOf(attributes),
      snapshot: stringAttribute(attributes[R.stageSnapshot]) ?? null,
      cache_key: stringAttribute(attributes[R.stageCacheKey]) ?? null,
      cached_from: cachedFrom,
    };
    if (this.endedSpan !== undefined) this.end(this.endedSpan);
    return stage.row;
  }

  /** Closes the run from its ended span: status, error, declared fields. */
  end(span: SpanView): void {
    this.endedSpan = span;
    const attributes = span.attributes;
    const finishedAt = hrTimeToMicros(span.endTime);
    this.pipeline = pipelineName(span);
    this.tenantId = stringAttribute(attributes[R.tenant]) ?? this.tenantId;
    this.inputFingerprint =
      stringAttribute(attributes[R.inputFingerprint]) ?? this.inputFingerprint;
    this.codeRef = codeRefOf(attributes) ?? this.codeRef;
    this.configHash = stringAttribute(attributes[R.configHash]) ?? this.configHash;
    this.deadlineAt = deadlineOf(attributes, this.startedAt) ?? this.deadlineAt;
    this.stagesExpected = countAttribute(attributes[R.stagesExpected]) ?? this.stagesExpected;
    this.explicitRowsIn = countAttribute(attributes[R.rowsIn]) ?? null;
    this.explicitRowsOut = countAttribute(attributes[R.rowsOut]) ?? null;
    this.explicitRetryCount = countAttribute(attributes[R.retryCount]) ?? this.explicitRetryCount;
    this.metadata = metadataOf(attributes);
    this.resumedFrom = stringAttribute(attributes[R.resumedFrom]) ?? this.resumedFrom;
    this.cachedFrom = stringAttribute(attributes[R.runCachedFrom]) ?? this.cachedFrom;
    this.entryPoint = stringAttribute(attributes[R.entryPoint]) ?? this.entryPoint;
    this.inputSnapshot = stringAttribute(attributes[R.inputSnapshot]) ?? this.inputSnapshot;

    const declared =
      parseDeclaredResult(attributes[R.result]) ??
      parseDeclaredResult(attributes[S.cicdPipelineResult]);
    const rootFailed = spanFailed(span);
    const deadlineExceeded = this.deadlineAt !== null && finishedAt > this.deadlineAt;
    const status = finishedRunStatus({
      rootFailed,
      declared,
      deadlineExceeded,
      stageFailed: this.failedNames > 0,
      // A resumed run counts the run it resumes as a try; only its own retries degrade it.
      retried: this.resumedFrom === null ? this.retryCount() > 0 : this.retries > 0,
    });
    const rootError = rootFailed ? spanError(span) : null;
    const stageError = this.lastFailedStage;
    let error: SpanError | null = null;
    if (status === "failed" || status === "timed_out") {
      error = hasDetail(rootError) ? rootError : (stageError?.error ?? rootError);
    } else if (status === "degraded") {
      error = stageError?.error ?? null;
    }
    this.openStages.length = 0;
    this.finished = {
      finishedAt,
      status,
      statusReason: statusReasonOf(status, span, this.deadlineAt, this.startedAt, finishedAt),
      error,
      failedStage: status === "completed" ? null : (stageError?.name ?? null),
    };
  }

  private namesWith(bit: number): string[] {
    const names: string[] = [];
    for (const [name, bits] of this.stageNames) if (bits & bit) names.push(name);
    return names;
  }

  private retryCount(): number {
    return this.explicitRetryCount ?? this.retries;
  }

  /** The run's row as of now; `heartbeat` is the time it is written, a sign its owner lives. */
  row(heartbeat: number): RunRow {
    const finished = this.finished;
    const error = finished?.error ?? null;
    const current = this.openStages[this.openStages.length - 1];
    return {
      run_id: this.runId,
      trace_id: this.traceId,
      span_id: this.spanId,
      tenant_id: this.tenantId,
      pipeline: this.pipeline,
      service_name: this.serviceName,
      status: finished?.status ?? "running",
      status_reason: finished?.statusReason ?? null,
      error: errorLine(error),
      error_type: error?.type ?? null,
      error_message: error?.message ?? null,
      error_stack: error?.stack ?? null,
      failed_stage: finished?.failedStage ?? null,
      input_fingerprint: this.inputFingerprint,
      code_ref: this.codeRef,
      config_hash: this.configHash,
      started_at: this.startedAt,
      finished_at: finished?.finishedAt ?? null,
      duration_seconds: finished ? (finished.finishedAt - this.startedAt) / 1e6 : null,
      deadline_at: this.deadlineAt,
      rows_in: this.explicitRowsIn ?? this.firstRowsIn,
      rows_out: this.explicitRowsOut ?? this.lastRowsOut,
      llm_calls: this.llmCalls,
      tokens: this.tokens,
      input_tokens: this.inputTokens,
      output_tokens: this.outputTokens,
      stages_expected: this.stagesExpected,
      stages_completed: this.completedNames,
      stages_executed: [...this.stageNames.keys()],
      stages_failed: this.failedNames === 0 ? [] : this.namesWith(StageBits.everFailed),
      retry_count: this.retryCount(),
      current_stage: finished ? null : (current?.name ?? null),
      metadata: this.metadata,
      owner_host: this.owner?.host ?? null,
      owner_pid: this.owner?.pid ?? null,
      owner_started_at: this.owner?.startedAt ?? null,
      last_heartbeat: heartbeat,
      resumed_from: this.resumedFrom,
      cached_from: this.cachedFrom,
      entry_point: this.entryPoint,
      input_snapshot: this.inputSnapshot,
      artifacts: this.artifacts,
    };
  }
}

function hasDetail(error: SpanError | null): boolean {
  return error !== null && (error.type !== null || error.stack !== null);
}

function pipelineName(span: SpanView): string {
  return (
    stringAttribute(span.attributes[R.pipeline]) ??
    stringAttribute(span.attributes[S.cicdPipelineName]) ??
    span.name
  );
}

function codeRefOf(attributes: Attributes): string | null {
  return (
    stringAttribute(attributes[R.codeRef]) ?? stringAttribute(attributes[S.vcsRevision]) ?? null
  );
}

/** The last instant a deadline may be, in epoch microseconds: the store's last (9999). */
const LAST_DEADLINE = LAST_MS * 1000;

/** A deadline past any date a store or a `Date` holds is no deadline. */
function deadlineOf(attributes: Attributes, startedAt: number): number | null {
  const ms = countAttribute(attributes[R.deadlineMs]);
  if (ms === undefined) return null;
  const at = startedAt + Math.round(ms * 1000);
  return at <= LAST_DEADLINE ? at : null;
}

function statusReasonOf(
  status: RunStatus,
  span: SpanView,
  deadlineAt: number | null,
  startedAt: number,
  finishedAt: number,
): string | null {
  if (status === "rejected" || status === "cancelled") {
    return stringAttribute(span.attributes[R.resultReason]) ?? (span.status.message || null);
  }
  if (status === "timed_out") {
    const declared = stringAttribute(span.attributes[R.resultReason]);
    if (declared) return declared;
    if (deadlineAt === null) return null;
    const limit = (deadlineAt - startedAt) / 1e6;
    const took = (finishedAt - startedAt) / 1e6;
    return `deadline of ${limit.toFixed(3)}s exceeded: the run took ${took.toFixed(3)}s`;
  }
  return null;
}

/** `runtrail.metadata.*` attributes as an object, or null when there are none. */
export function metadataOf(attributes: Attributes): Record<string, unknown> | null {
  let metadata: Record<string, unknown> | null = null;
  for (const key in attributes) {
    if (key.startsWith(R.metadataPrefix)) {
      metadata ??= {};
      metadata[key.slice(R.metadataPrefix.length)] = attributes[key];
    }
  }
  return metadata;
}
