/**
 * The attribute contract: what runtrail reads from spans and what its helpers write.
 * runtrail's own attributes live under the `runtrail.` prefix; the others are the
 * OpenTelemetry conventions and the LLM instrumentations runtrail understands.
 */

/** Attributes runtrail defines. The pipeline helpers write them; any span may carry them. */
export const RunTrailAttributes = {
  /**
   * `"run"` marks a span as a run, `"stage"` as a stage, wherever it sits in the trace; any
   * other value (the helpers write `"llm"` on LLM calls) marks a span that is neither.
   */
  kind: "runtrail.kind",
  /** Pipeline name of a run (else `cicd.pipeline.name`, else the span name). */
  pipeline: "runtrail.pipeline.name",
  /** Tenant of a run (else the processor's `tenant` option). */
  tenant: "runtrail.tenant.id",
  /** Rows read and written, on a run or a stage. */
  rowsIn: "runtrail.rows.in",
  rowsOut: "runtrail.rows.out",
  /** Declared outcome of a run: `"rejected"`, `"cancelled"` or `"timed_out"`. */
  result: "runtrail.run.result",
  /** Why the run ended with its declared result. */
  resultReason: "runtrail.run.result_reason",
  /** Milliseconds the run may take; a longer run ends `timed_out`. */
  deadlineMs: "runtrail.run.deadline_ms",
  /** Number of stages the run is expected to execute, for progress "k/n". */
  stagesExpected: "runtrail.run.stages_expected",
  /** Explicit retry count of the run (else counted from repeated stages). */
  retryCount: "runtrail.run.retry_count",
  inputFingerprint: "runtrail.input.fingerprint",
  configHash: "runtrail.config.hash",
  codeRef: "runtrail.code.ref",
  /** Attempt number of a stage execution, starting at 1. */
  stageAttempt: "runtrail.stage.attempt",
  /**
   * Place of a stage execution among its run's, from 0, as the helpers started them. Spans
   * received over OTLP are ordered by their times, which cannot tell apart stages that start
   * in the same millisecond; this can.
   */
  stageSeq: "runtrail.stage.seq",
  /** Run id of the failed run this run resumes. */
  resumedFrom: "runtrail.run.resumed_from",
  /** Run id of the run whose output this run reused whole, without running a stage. */
  runCachedFrom: "runtrail.run.cached_from",
  /** URL of the module that defines the pipeline, for `runtrail resume`. */
  entryPoint: "runtrail.run.entry_point",
  /** Snapshot of the run's input (see `snapshotRef`). */
  inputSnapshot: "runtrail.run.input_snapshot",
  /** Snapshot of a stage's output. */
  stageSnapshot: "runtrail.stage.snapshot",
  /** Content address of a stage: name, input fingerprint, code ref and config hash. */
  stageCacheKey: "runtrail.stage.cache_key",
  /** Run id whose snapshot a reused stage took its output from; the stage is then `cached`. */
  stageCachedFrom: "runtrail.stage.cached_from",
  /** Attributes of an artifact span (`runtrail.kind = "artifact"`). */
  artifactSeq: "runtrail.artifact.seq",
  artifactKind: "runtrail.artifact.kind",
  artifactFile: "runtrail.artifact.file",
  artifactMediaType: "runtrail.artifact.media_type",
  artifactSize: "runtrail.artifact.size",
  artifactSha256: "runtrail.artifact.sha256",
  /** The artifact's metadata, as JSON text. */
  artifactMetadata: "runtrail.artifact.metadata",
  /** The stage it was made in. */
  artifactStage: "runtrail.artifact.stage",
  /** Prefix of free-form metadata: `runtrail.metadata.source = "s3"` becomes `{ "source": "s3" }`. */
  metadataPrefix: "runtrail.metadata.",
} as const;

/** OpenTelemetry semantic conventions runtrail reads. */
export const SemconvAttributes = {
  serviceName: "service.name",
  cicdPipelineName: "cicd.pipeline.name",
  cicdPipelineResult: "cicd.pipeline.result",
  vcsRevision: "vcs.ref.head.revision",
  exceptionType: "exception.type",
  exceptionMessage: "exception.message",
  exceptionStacktrace: "exception.stacktrace",
} as const;

/** Token and call attributes of the LLM conventions runtrail aggregates. */
export const LlmAttributes = {
  // OpenTelemetry GenAI, current names.
  genAiOperation: "gen_ai.operation.name",
  genAiInputTokens: "gen_ai.usage.input_tokens",
  genAiOutputTokens: "gen_ai.usage.output_tokens",
  genAiSystem: "gen_ai.system",
  genAiProvider: "gen_ai.provider.name",
  genAiRequestModel: "gen_ai.request.model",
  // OpenTelemetry GenAI, deprecated names (still sent by OpenLLMetry and older SDKs).
  genAiPromptTokens: "gen_ai.usage.prompt_tokens",
  genAiCompletionTokens: "gen_ai.usage.completion_tokens",
  genAiTotalTokens: "gen_ai.usage.total_tokens",
  // OpenInference (Arize Phoenix).
  openInferenceKind: "openinference.span.kind",
  oiPromptTokens: "llm.token_count.prompt",
  oiCompletionTokens: "llm.token_count.completion",
  oiTotalTokens: "llm.token_count.total",
  // OpenLLMetry (Traceloop).
  traceloopKind: "traceloop.span.kind",
  llmRequestType: "llm.request.type",
  llmTotalTokens: "llm.usage.total_tokens",
} as const;

/**
 * `runtrail.kind` of the span an artifact is recorded with: a leaf child of the span that was
 * current when it was made, ended at once, carrying the artifact's `runtrail.artifact.*`.
 */
export const ARTIFACT_KIND = "artifact";
