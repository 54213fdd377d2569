import { setTimeout as sleep } from "node:timers/promises";
import {
  type Attributes,
  context,
  isSpanContextValid,
  type Link,
  type Span,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { RunTrailAttributes as R } from "../record/attributes.js";
import { runIdOf } from "../record/run-id.js";
import { START_MARKER_KIND, START_MARKER_NAME } from "../record/start-marker.js";
import { resolveStorePath } from "../store/store-path.js";
import { envEnabled } from "../util/enabled.js";
import { errorTypeOf, RunArtifacts } from "./artifacts.js";
import { detectCodeRef } from "./code-ref.js";
import { PipelineStage, SpanRecorder } from "./pipeline-stage.js";

export interface RunPipelineOptions {
  /** Default: `trace.getTracer("runtrail")` of the global provider. */
  tracer?: Tracer;
  /** Number of stages the run will execute, for progress "k/n". */
  stages?: number;
  /** How long the run may take. Past it, `run.signal` aborts and the run ends `timed_out`. */
  deadlineMs?: number;
  /** Fingerprint of the input, such as `fingerprint(input)`. */
  inputFingerprint?: string;
  /** Hash of the configuration, such as `fingerprint(config)`. */
  configHash?: string;
  /** Commit of the code. Default: detected from git (or `RUNTRAIL_CODE_REF`). */
  codeRef?: string;
  tenant?: string;
  metadata?: Attributes;
  /** Further attributes for the run span. */
  attributes?: Attributes;
  /** Start a new trace even inside an active span. Default false: the run nests in it. */
  root?: boolean;
  /**
   * End a short marker span (`runtrail.run.start`, with the run's attributes) as the run
   * starts, so that a store receiving the spans over OTLP, which only sees spans that ended,
   * shows the run as running from its first seconds. In-process recording ignores it.
   * Default true.
   */
  startMarker?: boolean;
  /**
   * The store whose folder keeps the run's artifacts (and, for `definePipeline`, snapshots).
   * Default: `RUNTRAIL_DB`, else `.runtrail/runs.duckdb`, as the span processor's.
   */
  store?: string;
  /** Links of the run span, such as to the run it resumes. */
  links?: Link[];
  /**
   * Keep artifacts (and snapshots). Default: true, unless `RUNTRAIL_ENABLED=false`. Spans are
   * made either way; whether they are recorded is the span processor's switch.
   */
  tracking?: boolean;
}

/** Whether a run keeps artifacts and snapshots: its option, else `RUNTRAIL_ENABLED`. */
export function trackingOn(option: boolean | undefined): boolean {
  return option ?? envEnabled(process.env);
}

/** A stage that was not run: its output came from an earlier run's snapshot. */
export interface CachedStage {
  /** Snapshot of its output, when it was kept. */
  snapshot?: string;
  /** The run that produced the output. */
  cachedFrom: string;
  /** Its content address, when it has one. */
  cacheKey?: string;
}

export interface StageOptions {
  /** Attempts after a failure before the stage (and the run) fails. Default 0. */
  retries?: number;
  /** Wait between attempts. Default 0. */
  retryDelayMs?: number;
  attributes?: Attributes;
}

/** A run while its body runs: start stages, record rows and LLM calls, declare its outcome. */
export class PipelineRun extends SpanRecorder {
  /** Aborted when the run's deadline passes. */
  readonly signal: AbortSignal;
  /** Stage executions started so far. */
  private stageCount = 0;

  constructor(
    span: Span,
    tracer: Tracer,
    readonly pipeline: string,
    /** The run id runtrail gives this run, known from its first moment. */
    readonly runId: string,
    signal: AbortSignal | undefined,
    artifacts: RunArtifacts | undefined,
  ) {
    super(span, tracer, artifacts, null);
    this.signal = signal ?? new AbortController().signal;
  }

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  /**
   * Runs a stage: a child span of the run, active while `body` runs so that spans it creates
   * (auto-instrumented HTTP or LLM calls) nest under it. A throw fails the stage; with
   * `retries`, the stage runs again, each attempt its own span.
   */
  async stage<T>(
    name: string,
    body: (stage: PipelineStage) => Promise<T> | T,
    options: StageOptions = {},
  ): Promise<T> {
    const attempts = 1 + (options.retries ?? 0);
    const parent = trace.setSpan(context.active(), this.span);
    for (let attempt = 1; ; attempt++) {
      const span = this.tracer.startSpan(
        name,
        {
          attributes: {
            [R.kind]: "stage",
            [R.stageSeq]: this.stageCount++,
            ...(attempt > 1 ? { [R.stageAttempt]: attempt } : {}),
            ...options.attributes,
          },
        },
        parent,
      );
      try {
        const result = await context.with(trace.setSpan(parent, span), () =>
          body(new PipelineStage(span, this.tracer, this.artifacts, name, attempt)),
        );
        span.end();
        return result;
      } catch (error) {
        failSpan(span, error);
        span.end();
        if (attempt >= attempts) throw error;
        if (options.retryDelayMs) await sleep(options.retryDelayMs);
      }
    }
  }

  /**
   * Records a stage that is not run because its output is known: reused from an earlier run
   * (a cache hit, or a stage a resumed run does not repeat). Its row is `cached`.
   */
  cachedStage(name: string, stage: CachedStage): void {
    const now = Date.now();
    this.tracer
      .startSpan(
        name,
        {
          startTime: now,
          attributes: {
            [R.kind]: "stage",
            [R.stageSeq]: this.stageCount++,
            ...(stage.snapshot ? { [R.stageSnapshot]: stage.snapshot } : {}),
            [R.stageCachedFrom]: stage.cachedFrom,
            ...(stage.cacheKey ? { [R.stageCacheKey]: stage.cacheKey } : {}),
          },
        },
        trace.setSpan(context.active(), this.span),
      )
      .end(now);
  }

  /** Declares the run rejected (its input refused); it ends `rejected` however it returns. */
  reject(reason: string): void {
    this.declare("rejected", reason);
  }

  /** Declares the run cancelled; it ends `cancelled` however it returns. */
  cancel(reason: string): void {
    this.declare("cancelled", reason);
  }

  /** Sets the input fingerprint once the input is known. */
  setInputFingerprint(value: string): void {
    this.span.setAttribute(R.inputFingerprint, value);
  }

  setConfigHash(value: string): void {
    this.span.setAttribute(R.configHash, value);
  }

  private declare(result: string, reason: string): void {
    this.span.setAttribute(R.result, result);
    this.span.setAttribute(R.resultReason, reason);
  }
}

function failSpan(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException({
      name: errorTypeOf(error),
      message: error.message,
      ...(error.stack ? { stack: error.stack } : {}),
    });
  } else {
    span.recordException({ message: String(error) });
  }
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

/**
 * Runs a named pipeline as a runtrail run: a span marked as a run, with the attributes the
 * options give. A throw fails the run and is rethrown; the value of `body` is returned.
 *
 * ```ts
 * await runPipeline("nightly-summaries", { stages: 2 }, async (run) => {
 *   const docs = await run.stage("load", async (s) => { s.rows({ out: 120 }); return load(); });
 *   await run.stage("summarize", async (s) => {
 *     s.llmCall({ model: "gpt-4o-mini", inputTokens: 900, outputTokens: 120 });
 *   });
 * });
 * ```
 */
export async function runPipeline<T>(
  name: string,
  options: RunPipelineOptions,
  body: (run: PipelineRun) => Promise<T> | T,
): Promise<T> {
  const tracer = options.tracer ?? trace.getTracer("runtrail");
  const attributes: Attributes = {
    [R.kind]: "run",
    [R.pipeline]: name,
    ...optional(R.stagesExpected, options.stages),
    ...optional(R.deadlineMs, options.deadlineMs),
    ...optional(R.inputFingerprint, options.inputFingerprint),
    ...optional(R.configHash, options.configHash),
    ...optional(R.codeRef, options.codeRef ?? detectCodeRef() ?? undefined),
    ...optional(R.tenant, options.tenant),
    ...options.attributes,
  };
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    attributes[R.metadataPrefix + key] = value;
  }
  const deadline = options.deadlineMs === undefined ? undefined : new AbortController();
  const timer =
    deadline && options.deadlineMs !== undefined
      ? setTimeout(
          () => deadline.abort(new Error(`deadline of ${options.deadlineMs} ms exceeded`)),
          options.deadlineMs,
        )
      : undefined;
  timer?.unref();
  const parent = options.root ? undefined : trace.getSpanContext(context.active());
  const isTraceRoot = parent === undefined || !isSpanContextValid(parent);
  const spanOptions = {
    attributes,
    root: options.root ?? false,
    ...(options.links ? { links: options.links } : {}),
  };
  return tracer.startActiveSpan(name, spanOptions, async (span) => {
    const ids = span.spanContext();
    const runId = runIdOf(ids.traceId, ids.spanId, isTraceRoot);
    const artifacts = trackingOn(options.tracking)
      ? new RunArtifacts(resolveStorePath(options.store), runId, tracer)
      : undefined;
    const run = new PipelineRun(span, tracer, name, runId, deadline?.signal, artifacts);
    if (options.startMarker ?? true) {
      tracer
        .startSpan(
          START_MARKER_NAME,
          { attributes: { ...attributes, [R.kind]: START_MARKER_KIND } },
          trace.setSpan(context.active(), span),
        )
        .end();
    }
    try {
      return await body(run);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      if (timer) clearTimeout(timer);
      span.end();
    }
  });
}

function optional(key: string, value: string | number | undefined): Attributes {
  return value === undefined ? {} : { [key]: value };
}
