// Where spans come in.
export {
  RunTrailSpanProcessor,
  type RunTrailSpanProcessorOptions,
  type RunTrailStats,
} from "./ingest/span-processor.js";
// Helpers for pipelines.
export type { Artifact, ArtifactContent, ArtifactOptions } from "./pipeline/artifacts.js";
export { detectCodeRef } from "./pipeline/code-ref.js";
export {
  definePipeline,
  isPipeline,
  Pipeline,
  type PipelineDefinition,
  type PipelineRunOptions,
  RESUMABLE_STATUSES,
  ResumeError,
  type ResumeOptions,
  type StageDefinition,
  type StageProgress,
} from "./pipeline/define-pipeline.js";
export { fingerprint } from "./pipeline/fingerprint.js";
export type { LlmCall } from "./pipeline/llm-call.js";
export { PipelineStage, type RowCounts, SpanRecorder } from "./pipeline/pipeline-stage.js";
export {
  type CachedStage,
  PipelineRun,
  type RunPipelineOptions,
  runPipeline,
  type StageOptions,
} from "./pipeline/run-pipeline.js";
export type { StoredRun } from "./pipeline/stored-run.js";
// Reading the store.
export { lookupRun, type RunLookup } from "./query/find-run.js";
export { type ListRunsOptions, listRuns, type RunCursor, type RunPage } from "./query/list-runs.js";
export type { RunFilter } from "./query/run-filter.js";
export { runStages } from "./query/run-stages.js";
export {
  type GroupStats,
  runStats,
  type StatsGroup,
  type StatsOptions,
} from "./query/run-stats.js";
// The words.
export { LlmAttributes, RunTrailAttributes, SemconvAttributes } from "./record/attributes.js";
export type { ArtifactRow, RunRow, StageRow } from "./record/rows.js";
export {
  RUN_STATUSES,
  type RunStatus,
  STAGE_STATUSES,
  type StageStatus,
} from "./record/run-status.js";
export type { SpanView } from "./record/span-view.js";
// The store.
export { type OpenStoreOptions, withStore } from "./store/open-store.js";
export { type ReapedRun, type ReapOptions, reapCrashedRuns } from "./store/reap.js";
export { StoreError, type StoreErrorKind } from "./store/store-errors.js";
export { resolveStorePath } from "./store/store-path.js";
export type { StoreSession } from "./store/store-session.js";
